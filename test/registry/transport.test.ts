import { describe, expect, it } from "vitest";
import { nextLink } from "../../src/registry/client.ts";
import { errorFromResponse, parseErrorEntries } from "../../src/registry/errors.ts";
import { parseRetryAfter } from "../../src/retry.ts";
import { isLoopbackHost, redactUrl, ResponseHeaders, type ResponseBody } from "../../src/registry/transport.ts";

describe("parseRetryAfter", () => {
  const now = Date.UTC(2030, 0, 1);
  it("reads seconds and HTTP dates, and nothing else", () => {
    expect(parseRetryAfter("120", now)).toBe(120_000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
    expect(parseRetryAfter("Tue, 01 Jan 2030 00:00:05 GMT", now)).toBe(5_000);
    expect(parseRetryAfter("Mon, 31 Dec 2029 00:00:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});

describe("redactUrl", () => {
  it("hides user info and signed query values but keeps harmless parameters", () => {
    const url = new URL(
      "https://user:pw@storage.example/blob?X-Amz-Signature=abc&X-Amz-Credential=key&_state=hmac&digest=sha256:1&n=10&token=t",
    );
    const redacted = redactUrl(url);
    expect(redacted).not.toMatch(/user|pw@|abc|key|hmac|=t(&|$)/);
    expect(redacted).toContain("digest=sha256%3A1");
    expect(redacted).toContain("n=10");
    expect(redacted).toContain("X-Amz-Signature=REDACTED");
  });
});

describe("nextLink", () => {
  const base = new URL("https://registry.example/v2/a/tags/list");
  it("finds rel=next among several links, resolving relative targets", () => {
    expect(nextLink(['</v2/a/tags/list?last=b&n=2>; rel="next"'], base)?.href).toBe("https://registry.example/v2/a/tags/list?last=b&n=2");
    expect(nextLink(['<https://x.example/p>; rel="prev", </v2/a/tags/list?last=c>; rel=next'], base)?.href).toBe(
      "https://registry.example/v2/a/tags/list?last=c",
    );
    expect(nextLink(['</p>; rel="first next"'], base)?.pathname).toBe("/p");
    expect(nextLink(['</p>; rel="nextpage"'], base)).toBeUndefined();
    expect(nextLink([], base)).toBeUndefined();
  });
});

describe("isLoopbackHost", () => {
  it("knows localhost, 127/8 and ::1 only", () => {
    for (const host of ["localhost", "127.0.0.1", "127.1.2.3", "[::1]"]) expect(isLoopbackHost(host)).toBe(true);
    for (const host of ["localhost.evil.net", "128.0.0.1", "10.0.0.1", "example.com"]) expect(isLoopbackHost(host)).toBe(false);
  });
});

describe("registry errors", () => {
  function response(status: number, body: string): Parameters<typeof errorFromResponse>[0] {
    const chunks = [Buffer.from(body)];
    const responseBody: ResponseBody = {
      async *[Symbol.asyncIterator]() {
        yield* chunks;
      },
      dump: async () => undefined,
      destroy: () => undefined,
    };
    return { status, url: new URL("https://r.example/v2/"), headers: new ResponseHeaders({}), body: responseBody };
  }

  it("maps statuses to codes and names the registry's errors", async () => {
    const error = await errorFromResponse(response(404, '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}'), "fetch x");
    expect(error).toMatchObject({ code: "NOT_FOUND", message: "Cannot fetch x: registry answered 404 MANIFEST_UNKNOWN: manifest unknown" });
    expect((await errorFromResponse(response(401, ""), "a")).code).toBe("UNAUTHORIZED");
    expect((await errorFromResponse(response(403, ""), "a")).code).toBe("DENIED");
    expect((await errorFromResponse(response(429, ""), "a")).code).toBe("RATE_LIMITED");
    expect((await errorFromResponse(response(502, "<html>Bad Gateway</html>"), "a")).message).toBe("Cannot a: registry answered 502 (<html>Bad Gateway</html>)");
  });

  it("keeps control characters of a hostile server out of messages", () => {
    expect(parseErrorEntries('{"errors":[{"code":"X\\u001b[31m","message":"bad\\u0007"}]}')).toEqual([{ code: "X [31m", message: "bad " }]);
  });
});
