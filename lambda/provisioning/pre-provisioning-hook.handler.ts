// Placeholder entry point so that synth works while the handler is being written.
export const handler = async (): Promise<never> => {
  throw new Error('handler not built yet');
};
