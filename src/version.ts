/** padlock's version, as `padlock --version` prints it and its ACME User-Agent sends it (package.json's, kept equal by a test). */
export const VERSION = '0.1.0';
