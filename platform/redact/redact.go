// Package redact keeps the credentials of connection URLs (--event-store,
// --read-model, --nats, --otlp-endpoint) out of log lines and error
// messages.
//
// URL and URLs mask what a URL carries of a secret before it is printed. A
// Scrubber is the net under them: it knows the secrets of the configured URLs
// and masks them wherever they appear, in a client library's error text or
// in any log line, so that a message that embeds a URL the code did not
// redact itself still leaks nothing.
package redact

import (
	"net/url"
	"sort"
	"strings"
)

// Mask replaces every secret.
const Mask = "xxxxx"

// minBareSecret is the shortest password a Scrubber masks wherever it
// appears on its own. A shorter one is masked only together with its user
// name ("user:pw"): masking every occurrence of two letters would make the
// log unreadable.
const minBareSecret = 4

// URL returns raw with its password and its secret query values (password,
// token, secret, key, authMechanismProperties) masked. A string that does not
// parse as a URL gets whatever precedes an '@' in its authority masked, so a
// malformed URL is never printed with its credentials either.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return maskAuthority(raw)
	}
	if u.RawQuery != "" {
		q := u.Query()
		changed := false
		for k, vs := range q {
			if secretKey(k) {
				for i := range vs {
					vs[i] = Mask
				}
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.Redacted()
}

// URLs redacts each URL of a comma-separated list (the form of --nats).
func URLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		parts[i] = URL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

// secretKey reports whether a query parameter holds a credential.
func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"password", "token", "secret", "key", "authmechanismproperties"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// authority returns the start and end of raw's authority (after "//", up to
// the first '/', '?' or '#'), or of the whole string when it has no "//".
func authority(raw string) (int, int) {
	start := 0
	if i := strings.Index(raw, "//"); i >= 0 {
		start = i + 2
	}
	end := len(raw)
	if j := strings.IndexAny(raw[start:], "/?#"); j >= 0 {
		end = start + j
	}
	return start, end
}

// maskAuthority masks the user information of a string that is not a URL.
func maskAuthority(raw string) string {
	start, end := authority(raw)
	at := strings.LastIndexByte(raw[start:end], '@')
	if at < 0 {
		return raw
	}
	return raw[:start] + Mask + raw[start+at:]
}

// secretsOf returns the credentials a URL carries: its user information,
// its password (as written and decoded) and its secret query values.
func secretsOf(raw string) []string {
	var out []string
	start, end := authority(raw)
	if at := strings.LastIndexByte(raw[start:end], '@'); at > 0 {
		info := raw[start : start+at]
		out = append(out, info)
		if _, pw, ok := strings.Cut(info, ":"); ok && pw != "" {
			out = append(out, pw)
			if dec, err := url.PathUnescape(pw); err == nil {
				out = append(out, dec)
			}
		}
	}
	if u, err := url.Parse(raw); err == nil {
		for k, vs := range u.Query() {
			if secretKey(k) {
				out = append(out, vs...)
			}
		}
	}
	return out
}

// Scrubber masks the secrets of a fixed set of URLs in any text: a URL's
// whole user information ("user:password" becomes Mask), and its password or
// secret query values wherever they appear alone. A nil *Scrubber masks
// nothing.
type Scrubber struct {
	r *strings.Replacer
}

// NewScrubber returns a Scrubber for the secrets of urls (each a URL or a
// comma-separated list), or nil when they carry none.
func NewScrubber(urls ...string) *Scrubber {
	seen := map[string]bool{}
	var secrets []string
	for _, list := range urls {
		for _, raw := range strings.Split(list, ",") {
			for _, s := range secretsOf(strings.TrimSpace(raw)) {
				if s == "" || seen[s] || (len(s) < minBareSecret && !strings.Contains(s, ":")) {
					continue
				}
				seen[s] = true
				secrets = append(secrets, s)
			}
		}
	}
	if len(secrets) == 0 {
		return nil
	}
	// Longest first: a password inside the user information it belongs to
	// is masked with it.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	pairs := make([]string, 0, 2*len(secrets))
	for _, s := range secrets {
		pairs = append(pairs, s, Mask)
	}
	return &Scrubber{r: strings.NewReplacer(pairs...)}
}

// String returns s with every secret masked.
func (s *Scrubber) String(text string) string {
	if s == nil {
		return text
	}
	return s.r.Replace(text)
}

// Error returns err with every secret masked from its text; errors.Is and
// errors.As still see err's chain. nil stays nil.
func (s *Scrubber) Error(err error) error {
	if s == nil || err == nil {
		return err
	}
	text := err.Error()
	if clean := s.r.Replace(text); clean != text {
		return &scrubbed{text: clean, err: err}
	}
	return err
}

type scrubbed struct {
	text string
	err  error
}

func (e *scrubbed) Error() string { return e.text }
func (e *scrubbed) Unwrap() error { return e.err }
