/**
 * A result that carries its own JSON text, for the dispatcher to answer with. Apart from the
 * dispatcher, so that what builds such a result (routing) needs nothing of JSON-RPC.
 */

/**
 * Where a handler's result may carry its own JSON text: a method under this key (on its prototype,
 * so a copy made by spreading it carries none) that returns exactly what JSON.stringify would write
 * of the result, byte for byte. For a result of a fixed shape answered on the hot path (the
 * routing result of system.event): JSON.stringify of its ~700 bytes was ~8% of the gateway's time
 * at 16 x 64, and the parts that repeat from call to call (the route, the session keys) can be
 * written once. A symbol key is never serialized.
 */
export const RESULT_JSON: unique symbol = Symbol('resultJson');

/** A result that writes its own JSON (see RESULT_JSON). */
export interface OwnJson {
  [RESULT_JSON](): string;
}
