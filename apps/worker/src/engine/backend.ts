import {
  LstmConfigError,
  initBackend,
  resolveBackendPreference,
  type BackendInfo,
  type BackendPreference,
} from '@relu-lstm/lstm';

/** The backend RELU_LSTM_BACKEND names (undefined: 'auto'); a bad value's error names the variable, not the library's argument. */
export async function initBackendFromEnv(backend: string | undefined): Promise<BackendInfo> {
  let preference: BackendPreference | undefined;
  try {
    preference = backend === undefined ? undefined : resolveBackendPreference(backend.toLowerCase());
  } catch (e) {
    if (e instanceof LstmConfigError) throw new LstmConfigError('RELU_LSTM_BACKEND', e.expected, e.actual);
    throw e;
  }
  return initBackend(preference);
}
