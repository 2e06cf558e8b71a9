import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseWwwAuthenticate } from "../../../src/registry/auth/challenge.ts";

describe("parseWwwAuthenticate", () => {
  it("reads distribution's Bearer challenge with a comma inside the quoted scope", () => {
    expect(
      parseWwwAuthenticate('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'),
    ).toEqual([
      {
        scheme: "bearer",
        parameters: { realm: "https://auth.example/token", service: "registry.example", scope: "repository:a/b:pull,push" },
      },
    ]);
  });

  it("reads several challenges in one header and across headers", () => {
    const challenges = parseWwwAuthenticate(['Basic realm="r1", Bearer realm="https://t/x", service=svc', 'Newauth realm="apps", type=1, title="Login to \\"apps\\""']);
    expect(challenges.map((challenge) => challenge.scheme)).toEqual(["basic", "bearer", "newauth"]);
    expect(challenges[1]?.parameters).toEqual({ realm: "https://t/x", service: "svc" });
    expect(challenges[2]?.parameters).toEqual({ realm: "apps", type: "1", title: 'Login to "apps"' });
  });

  it("tolerates odd spacing, case, empty list elements, unquoted URLs and token68", () => {
    expect(parseWwwAuthenticate('  BEARER   Realm = "https://x/t" ,, Service="s" , error="insufficient_scope"')).toEqual([
      { scheme: "bearer", parameters: { realm: "https://x/t", service: "s", error: "insufficient_scope" } },
    ]);
    expect(parseWwwAuthenticate("Bearer realm=https://auth.example:8443/token,service=reg")[0]?.parameters).toEqual({
      realm: "https://auth.example:8443/token",
      service: "reg",
    });
    expect(parseWwwAuthenticate("Negotiate abc123==, Basic realm=x")).toEqual([
      { scheme: "negotiate", parameters: {}, token68: "abc123==" },
      { scheme: "basic", parameters: { realm: "x" } },
    ]);
    expect(parseWwwAuthenticate("Basic")).toEqual([{ scheme: "basic", parameters: {} }]);
    expect(parseWwwAuthenticate("")).toEqual([]);
  });

  it("keeps an unterminated quoted value instead of failing", () => {
    expect(parseWwwAuthenticate('Bearer realm="https://x/t')[0]?.parameters["realm"]).toBe("https://x/t");
  });

  it("never throws on arbitrary input", () => {
    fc.assert(
      fc.property(fc.string(), (input) => {
        const challenges = parseWwwAuthenticate(input);
        for (const challenge of challenges) expect(challenge.scheme).toBe(challenge.scheme.toLowerCase());
      }),
    );
  });

  it("round-trips generated Bearer challenges with arbitrary quoted values", () => {
    const value = fc.string().filter((text) => !text.includes("\u0000"));
    fc.assert(
      fc.property(value, value, (realm, scope) => {
        const quote = (text: string) => `"${text.replace(/["\\]/g, (char) => `\\${char}`)}"`;
        const [challenge] = parseWwwAuthenticate(`Bearer realm=${quote(realm)},scope=${quote(scope)}`);
        expect(challenge?.parameters).toEqual({ realm, scope });
      }),
    );
  });
});
