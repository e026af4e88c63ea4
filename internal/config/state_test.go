package config

import (
	"strings"
	"testing"
	"time"
)

func TestRedisValidate(t *testing.T) {
	tests := []struct {
		name  string
		redis Redis
		want  string // "" for valid
	}{
		{"off", Redis{}, ""},
		{"plain", Redis{URL: "redis://127.0.0.1:6379/0"}, ""},
		{"tls", Redis{URL: "rediss://redis.internal:6380", TLS: RedisTLS{CAFile: "/ca.pem", ServerName: "redis"}}, ""},
		{"settings", Redis{URL: "redis://r", KeyPrefix: "app1:", Timeout: Duration(20 * time.Millisecond), PasswordFile: "/run/pw"}, ""},
		{"settings without url", Redis{KeyPrefix: "x:"}, "url must be set"},
		{"scheme", Redis{URL: "http://r:6379"}, "redis:// or rediss://"},
		{"no host", Redis{URL: "redis://"}, "no host"},
		{"bad url", Redis{URL: "redis://u:s3cret@[::1"}, "not a valid URL"},
		{"tls needs rediss", Redis{URL: "redis://r", TLS: RedisTLS{CAFile: "/ca.pem"}}, "needs a rediss://"},
		{"two passwords", Redis{URL: "redis://:s3cret@r", PasswordFile: "/run/pw"}, "not both"},
		{"timeout", Redis{URL: "redis://r", Timeout: Duration(time.Minute)}, "state.redis.timeout"},
		{"prefix", Redis{URL: "redis://r", KeyPrefix: "a b"}, "key_prefix"},
		{"long prefix", Redis{URL: "redis://r", KeyPrefix: strings.Repeat("p", 200)}, "key_prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.redis.validate(Approvals{})
			if tt.want == "" {
				if len(errs) > 0 {
					t.Fatalf("errors %v", errs)
				}
				return
			}
			if len(errs) == 0 || !strings.Contains(errs[0].Error(), tt.want) {
				t.Fatalf("errors %v, want one with %q", errs, tt.want)
			}
			for _, e := range errs {
				if strings.Contains(e.Error(), "s3cret") {
					t.Fatalf("error %q quotes the password", e)
				}
			}
		})
	}
}

func TestRedisURLMasked(t *testing.T) {
	var c Config
	c.State.Redis.URL = "redis://user:s3cret@r:6379/0"
	var b strings.Builder
	if err := WriteYAML(&b, c); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "s3cret") || !strings.Contains(b.String(), "redis://****@r:6379/0") {
		t.Fatalf("printed:\n%s", b.String())
	}
}

// TestApprovalsDirWithRedis: two homes for the controls is a mistake the
// operator is told of.
func TestApprovalsDirWithRedis(t *testing.T) {
	off := false
	for _, tc := range []struct {
		name string
		mod  func(c *Config)
		want bool
	}{
		{"dir and redis", func(c *Config) { c.Approvals.Dir = "/var/lib/verdict"; c.State.Redis.URL = "redis://r" }, true},
		{"redis only", func(c *Config) { c.State.Redis.URL = "redis://r" }, false},
		{"dir only", func(c *Config) { c.Approvals.Dir = "/var/lib/verdict" }, false},
		{"approvals off", func(c *Config) {
			c.Approvals.Dir, c.State.Redis.URL, c.Approvals.Enabled = "/var/lib/verdict", "redis://r", &off
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mod(&c)
			err := c.Validate()
			if got := err != nil && strings.Contains(err.Error(), "approvals.dir and state.redis.url"); got != tc.want {
				t.Errorf("Validate: %v; want the approvals.dir error: %v", err, tc.want)
			}
		})
	}
}
