/**
 * One call over a WebSocket, for a one-shot command whose request the HTTP ingress would refuse
 * as too large (see withClient). A module of its own, loaded for that alone: the client library
 * and ws are ~190 KB that every other one-shot command would otherwise load and compile.
 */
import { connect } from '../client/client.js';
import type { MethodName, ParamsOf, ResultOf } from '../protocol/methods.js';
import type { ConnectionSettings } from './client-commands.js';

export async function callOverWebSocket<M extends MethodName>(settings: ConnectionSettings, method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
  const client = await connect(settings);
  try {
    return await client.call(method, params);
  } finally {
    await client.close();
  }
}
