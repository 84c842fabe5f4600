/**
 * Gradient functions for tfjs-core's ops. tfjs-core's CommonJS build registers none on its own, and its
 * `register_all_gradients` module is ESM only (jest on Node 20 cannot require it). The umbrella
 * package's CommonJS bundle registers all of them into tfjs's global registry, the one our
 * tfjs-core instance reads; tfjs-node loads the same umbrella, so this adds nothing on a GPU host.
 * Ops outside our hand-written BPTT (weight permutation, bias sum, dropout, heads, losses) need them.
 */
import '@tensorflow/tfjs';
