/**
 * DSSE v1.0.2: the pre-authentication encoding that is signed. Hand-written because it is
 * five lines, and the verify entry point must not pull in @sigstore/core for them
 * (`dsse.preAuthEncoding` there gives identical bytes; a test checks).
 */
export const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";

/** `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in bytes, ASCII decimal. */
export function preAuthEncoding(payloadType: string, body: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, "utf8");
  const head = Buffer.from(`DSSEv1 ${type.length} `, "ascii");
  return Buffer.concat([head, type, Buffer.from(` ${body.length} `, "ascii"), body]);
}
