// Package guard runs cheap checks on request bytes before they are parsed
// for policy, so that hostile input is refused early, at a bounded cost, with
// a reason that is safe to return to the caller.
//
// There are three checks:
//
//   - ScanJSON validates a JSON body in one pass, without allocating, and enforces
//     limits on size, nesting, value count, string length, members per
//     container and, optionally, duplicate member names.
//   - CheckHeaders validates an Envoy-style header map: count, sizes, name
//     syntax and control characters in values.
//   - CheckPath validates Envoy's :path, and NormalizePath returns the
//     canonical path that policies should match on.
//
// Each check returns nil or a *Violation with a stable Code, a Message that
// never quotes more than a short, escaped excerpt of the input (at most 32
// bytes: a header name, an offending byte, a malformed escape, the end of a
// duplicate member's JSON pointer), never a header value or a JSON string
// value, and the byte Offset of the problem when there is one.
//
// # Codes
//
// JSON (ScanJSON):
//
//	too_large            the document is longer than MaxBytes
//	too_deep             arrays/objects nest deeper than MaxDepth
//	too_many_elements    more than MaxElements values in the document
//	string_too_long      a string or member name decodes to more than MaxStringBytes
//	too_many_members     an object or array has more than MaxMembers members
//	duplicate_key        an object names a member twice (RejectDuplicateKeys); the
//	                     message names the member by its JSON pointer ("/params/name")
//	invalid_utf8         invalid UTF-8 in a string, or an escaped lone surrogate ("\ud800")
//	invalid_json         not JSON: bad token, NaN, comment, single quotes, trailing comma, truncation
//	trailing_data        something other than whitespace after the value
//
// Headers (CheckHeaders):
//
//	too_many_headers     more than MaxHeaders fields
//	header_too_large     a value longer than MaxValueBytes, or all fields longer than MaxTotalBytes
//	header_name_invalid  a name that is not an RFC 9110 token nor a known pseudo-header
//	header_control_char  a value with NUL, CR, LF, another C0 control but HTAB, or DEL
//
// Paths (CheckPath, NormalizePath):
//
//	path_too_long        the :path (query included) is longer than MaxBytes
//	path_invalid         no leading "/" (and not "*"), a '#', or a raw non-ASCII byte
//	path_control_char    a control character, raw or percent-encoded (%00, %0A, %7F, %C2%85)
//	path_bad_escape      a malformed percent escape (%zz, a truncated %4)
//	invalid_utf8         percent-encoded bytes that are not valid UTF-8 (%C3, %C0%AF)
//	ambiguous_path       a path servers resolve differently: a raw "\", %2F or %5C, a dot
//	                     segment with escapes (%2e%2e), an empty or dot segment with ";"
//	                     parameters ("..;"), a double-encoded ".", "/", "\" or "%"
//
// # Path normalization
//
// NormalizePath refuses what CheckPath refuses, ambiguous paths included
// (see CheckPath: they are refused rather than normalized one way, because
// no one way is right for every upstream). Otherwise it decodes percent
// escapes except those of "%", "?" and "#", which stay encoded in uppercase
// hex (%25, %3F, %23); merges repeated slashes; resolves the plain "." and
// ".." segments as RFC 3986 section 5.2.4 does, never climbing above the
// root; keeps a trailing slash; drops the query. Other path parameters
// after ";" are data and stay as they are.
//
//	/a//b/../c          /a/c
//	/%7Euser            /~user
//	/./a/               /a/
//	/..                 /
//	/a?x=/../           /a
//	/a;v=1/b            /a;v=1/b
//	/caf%C3%A9          /café
//	*                   *
//	/a%00               path_control_char
//	/%zz                path_bad_escape
//	/%C3                invalid_utf8
//	/docs/%2e%2e/admin  ambiguous_path
//	/docs/..;/admin     ambiguous_path
//	/a%2Fb, /a\b        ambiguous_path
//
// NormalizePath is idempotent: NormalizePath(p) returns p for every p it
// returns.
package guard
