package bucket

import "log/slog"

// Secret is a configuration string that never shows its value: flag
// defaults and usage, a YAML or JSON dump of the configuration, fmt and
// slog all print "********" (or nothing when it is empty). Value returns
// the secret itself.
//
// It is a string, not a struct, so the README's flag reference (which maps
// each flag to the address of its field) and yaml.v3's plain string
// decoding work on it unchanged.
type Secret string

// masked is what every printing of a non-empty Secret shows.
const masked = "********"

// Value returns the secret.
func (s Secret) Value() string { return string(s) }

// String implements flag.Value and fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return masked
}

// Set implements flag.Value.
func (s *Secret) Set(v string) error {
	*s = Secret(v)
	return nil
}

// MarshalYAML shows a set secret as "********".
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalText shows a set secret as "********" (encoding/json and other
// text encoders). Decoding needs no method: the value is a plain string.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue keeps the secret out of structured logs.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// GoString keeps the secret out of %#v.
func (s Secret) GoString() string { return `"` + s.String() + `"` }
