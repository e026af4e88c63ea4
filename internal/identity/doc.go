// Package identity establishes verified caller identity for the policy
// decision point: bearer JWTs checked against a JWKS, and the client
// certificate of an mTLS peer.
//
// # JWT verification
//
// A [Verifier] checks compact JWS tokens with github.com/lestrrat-go/jwx/v3:
// jwx parses the JOSE header and the JWKS, checks the signature and
// validates the registered claims. The Verifier chooses the key itself (so
// that an unknown "kid" can trigger a JWKS refresh and so that each refusal
// maps to a precise [Error] code) and hands exactly that key and the header's
// algorithm to jwx. Checks run in this order, each failure with a stable
// code (see the Code constants):
//
//   - empty token: token_missing; longer than Config.MaxTokenBytes:
//     token_too_large; no usable key set yet (URL JWKS unreachable since
//     start): jwks_unavailable;
//   - not a compact JWS made of three canonical, unpadded base64url
//     segments, a header that is not JSON, a "crit" or "b64" header
//     parameter: token_malformed;
//   - header "alg" missing or not in Config.Algorithms ("none" and HS* can
//     never be configured): algorithm_not_allowed;
//   - "kid" not in the key set even after a refresh: unknown_key;
//   - "kid" known but no key under it fits the algorithm (key type or curve
//     differs, or the JWK's own "alg" names another algorithm):
//     algorithm_not_allowed;
//   - bad signature: invalid_signature;
//   - then the claims, in this order: "exp" missing (token_malformed), "exp"
//     past (token_expired), "nbf" future (token_not_yet_valid), "iat"
//     future (token_issued_in_future), "iss" (issuer_mismatch), "aud"
//     (audience_mismatch), "sub" missing or empty (subject_missing). The
//     time checks allow Config.Leeway of clock skew.
//
// Choices the verifier makes:
//
//   - Tokens without a "kid" are tried against every key of the set whose
//     type, curve and declared "alg" fit the header's algorithm (a JWKS has
//     few keys, so the cost is bounded). Such a token never triggers a
//     refresh; with no fitting key it is refused with unknown_key.
//   - Keys come only from the configured JWKS. Header parameters that
//     name or embed keys ("jku", "jwk", "x5u", "x5c") are ignored. The
//     "typ" header is not checked (IdPs use "JWT", "at+jwt" and others).
//   - JWKS entries that are symmetric ("oct"), marked for another use
//     ("use" other than "sig", "key_ops" without "verify"), whose own
//     "alg" does not fit their type, RSA keys under 2048 bits or with an
//     exponent below 3, or of unsupported types or curves are skipped with
//     a warning (kid and reason only); private keys are reduced to their
//     public part. A JWKS without a usable key is an error. The RSA checks
//     are done here because jwx's own are process-wide settings that OPA
//     relaxes in an init function.
//   - Result.Claims holds numbers as json.Number, exactly as the token
//     wrote them (so "exp" stays NumericDate seconds). Result values are
//     shared with the cache and must be treated as read-only.
//   - The verified-token cache is keyed by the SHA-256 of the token. A hit
//     re-checks "exp" against Config.Now with the leeway; every change of
//     the key set empties the cache. When it is full, the soonest-expiring of
//     a few entries sampled in (randomised) map order makes room.
//   - Key rotation: an unknown "kid" re-reads the file or re-fetches the
//     URL at most once per Config.MinRefreshInterval (measured between such
//     kid-triggered refreshes with Config.Now); concurrent refreshes of any
//     cause share one load. A URL is also re-fetched every
//     Config.RefreshInterval; after a failure it is retried after
//     MinRefreshInterval, doubling up to RefreshInterval. A file is
//     re-read when its modification time or size changes, checked at most
//     once a second during Verify. A failed load keeps the last good set.
//   - Logs never carry tokens, claim values or key material. A JWKS URL is
//     logged without userinfo, query or fragment.
//
// # mTLS peers
//
// [PeerFromContext] reports the identity of a gRPC peer whose client
// certificate chain the TLS handshake verified; an unverified certificate
// yields a zero [Peer]. A [PeerAllowList] restricts which verified peers
// may call at all. It exempts nothing, health checks included: a
// deployment that requires mTLS identities must let its health probes
// present an allowed certificate too (or probe another listener).
package identity
