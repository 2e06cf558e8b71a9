import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { toDigest } from "../../src/oci/digest.ts";
import { ONMETAL_MEDIA_TYPES } from "../../src/oci/dialects.ts";
import { encodeOnmetalConfig, encodeOnmetalManifest, goJsonString } from "../../src/oci/onmetal.ts";

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

// The test vector of the Garden Linux `_oci` README (docs/formats.md#onmetal-v1alpha1).
const COMMAND_LINE =
  "ro console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0 cgroup_enable=memory swapaccount=1 security=apparmor";
const ROOTFS: Descriptor = {
  mediaType: ONMETAL_MEDIA_TYPES.rootfs,
  digest: toDigest("sha256:44dd616962d17884bd3609443a3c62b94d423fd1513a40098ffa1a1f75495fd5"),
  size: 231536600,
};
const INITRAMFS: Descriptor = {
  mediaType: ONMETAL_MEDIA_TYPES.initramfs,
  digest: toDigest("sha256:3108caa582a70f3490723a654d93896840ea2ad09d3c06bb0c51ed83a60e0660"),
  size: 16583520,
};
const VMLINUZ: Descriptor = {
  mediaType: ONMETAL_MEDIA_TYPES.vmlinuz,
  digest: toDigest("sha256:d002d4426df1928be7646289e8a67f2851679e955cacbbc042295f5c6af80b69"),
  size: 13212832,
};

describe("onmetal v1alpha1 encoding", () => {
  it("reproduces the config of the Garden Linux test vector", () => {
    const config = encodeOnmetalConfig(COMMAND_LINE);
    expect(config.byteLength).toBe(147);
    expect(sha256(config)).toBe("sha256:41c46e4d7cec399eee96a20c7b3ba27b4cf4910eae915aa9bb7e1837f2982dd9");
  });

  it("reproduces the manifest digest sha256:f0dcfde4…fa394 of the test vector", () => {
    const configBytes = encodeOnmetalConfig(COMMAND_LINE);
    const config: Descriptor = { mediaType: ONMETAL_MEDIA_TYPES.config, digest: toDigest(sha256(configBytes)), size: configBytes.byteLength };
    const manifest = encodeOnmetalManifest(config, [ROOTFS, INITRAMFS, VMLINUZ]);
    expect(manifest.byteLength).toBe(713);
    expect(sha256(manifest)).toBe("sha256:f0dcfde4f8b4b6033add31243096a4b560173cd9884be1e37c524c53219fa394");
    const text = new TextDecoder().decode(manifest);
    expect(text.startsWith('{"schemaVersion":2,"config":{"mediaType":')).toBe(true);
    expect(text.endsWith("\n")).toBe(false);
  });

  it("writes {} for an empty command line, as Go's omitempty does", () => {
    expect(new TextDecoder().decode(encodeOnmetalConfig(""))).toBe("{}");
    expect(new TextDecoder().decode(encodeOnmetalConfig(undefined))).toBe("{}");
  });

  it("escapes strings as Go's encoding/json does", () => {
    expect(goJsonString("a<b>&c")).toBe('"a\\u003cb\\u003e\\u0026c"');
    expect(goJsonString('quote " backslash \\')).toBe('"quote \\" backslash \\\\"');
    expect(goJsonString("\n\r\t")).toBe('"\\n\\r\\t"');
    expect(goJsonString("\b\f\u0001\u001f")).toBe('"\\u0008\\u000c\\u0001\\u001f"');
    expect(goJsonString("\u007f é ü 🙂")).toBe('"\u007f é ü 🙂"');
    expect(goJsonString("\u2028\u2029")).toBe('"\\u2028\\u2029"');
    expect(goJsonString("lone \ud800 surrogate")).toBe('"lone \\ufffd surrogate"');
  });

  it("agrees with JSON.stringify wherever Go and JavaScript escape alike", () => {
    const sample = "root=/dev/sda1 console=ttyS0,115200 init=/sbin/init quiet 'single' ÄÖÜ";
    expect(goJsonString(sample)).toBe(JSON.stringify(sample));
  });
});
