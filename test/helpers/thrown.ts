/** What `run` throws, or undefined when it returns: for asserting on an error's fields, not only its message. */
export function thrownBy(run: () => unknown): unknown {
  try {
    run();
  } catch (thrown) {
    return thrown;
  }
  return undefined;
}
