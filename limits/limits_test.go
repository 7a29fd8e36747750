package limits

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func defaults(t *testing.T) Limits {
	var l Limits
	l.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	return l
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(*Limits)
		wantErr string
	}{
		{"defaults", func(*Limits) {}, ""},
		{"no labels", func(l *Limits) { l.MaxLabelNamesPerSeries = 0 }, "-validation.max-label-names-per-series must be at least 1, got 0"},
		{"name length", func(l *Limits) { l.MaxLabelNameLength = 0 }, "-validation.max-length-label-name"},
		{"value length", func(l *Limits) { l.MaxLabelValueLength = -1 }, "-validation.max-length-label-value"},
		{"metadata length", func(l *Limits) { l.MaxMetadataLength = 0 }, "-validation.max-metadata-length"},
		{"negative future", func(l *Limits) { l.CreationGracePeriod = -time.Second }, "-validation.create-grace-period must not be negative"},
		{"negative past", func(l *Limits) { l.PastGracePeriod = -time.Second }, "-validation.past-grace-period"},
		{"negative exemplars", func(l *Limits) { l.MaxExemplarsPerSeries = -1 }, "-validation.max-exemplars-per-series"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := defaults(t)
			tc.mod(&l)
			err := l.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestOverridesGiveDefaults(t *testing.T) {
	l := defaults(t)
	o := NewOverrides(l)
	if got := o.For("tenant-a"); *got != l {
		t.Fatalf("For() = %+v, want the defaults %+v", *got, l)
	}
}
