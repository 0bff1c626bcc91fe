/**
 * switchboard's library entry: the typed client that agents and IDE plugins use, with the wire
 * types it speaks. `import { connect } from 'switchboard'`.
 */
export {
  connect,
  SwitchboardClient,
  type CallOptions,
  type ConnectOptions,
  type NotificationListener,
  type ReconnectChange,
  type ReconnectOptions,
  type AfterFor,
  type EventsOptions,
  type SubscribeOptions,
  type SubscribeTarget,
  type Subscription,
} from './client/client.js';
export { ConnectionError, RpcCallError, type ConnectionFailure, type HttpRefusal } from './client/errors.js';
export { callOverHttp, type HttpCallOptions } from './client/http.js';
export { localGatewayToken, localGatewayUrl } from './client/local-gateway.js';
export { TokenFileError } from './config/data-dir.js';
export { DEFAULT_URL } from './protocol/constants.js';
export { ErrorCode, type ErrorData, type ErrorName, type ParamProblem } from './protocol/errors.js';
export type { MethodName, NotificationArgs, NotificationName, NotificationParams, ParamsOf, ResultOf } from './protocol/methods.js';
export type * from './protocol/wire-types.js';
