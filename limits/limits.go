package limits

import (
	"flag"
	"fmt"
	"time"
)

// Limits are one tenant's limits. The flag values are the defaults for every
// tenant; per-tenant overrides replace them field by field.
type Limits struct {
	MaxLabelNamesPerSeries int           `yaml:"max_label_names_per_series"`
	MaxLabelNameLength     int           `yaml:"max_label_name_length"`
	MaxLabelValueLength    int           `yaml:"max_label_value_length"`
	MaxMetadataLength      int           `yaml:"max_metadata_length"`
	CreationGracePeriod    time.Duration `yaml:"creation_grace_period"`
	PastGracePeriod        time.Duration `yaml:"past_grace_period"`
	MaxExemplarsPerSeries  int           `yaml:"max_exemplars_per_series"`
}

// RegisterFlags registers the default limits.
func (l *Limits) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&l.MaxLabelNamesPerSeries, "validation.max-label-names-per-series", 30, "Most labels a series may have, its metric name included.")
	fs.IntVar(&l.MaxLabelNameLength, "validation.max-length-label-name", 1024, "Longest label name, in bytes.")
	fs.IntVar(&l.MaxLabelValueLength, "validation.max-length-label-value", 2048, "Longest label value, in bytes.")
	fs.IntVar(&l.MaxMetadataLength, "validation.max-metadata-length", 1024, "Longest metric family name, help or unit in metadata, in bytes.")
	fs.DurationVar(&l.CreationGracePeriod, "validation.create-grace-period", 10*time.Minute, "Reject samples whose timestamp is further than this in the future.")
	fs.DurationVar(&l.PastGracePeriod, "validation.past-grace-period", 0, "Reject samples older than this; 0 accepts any age the ingester's TSDB accepts.")
	fs.IntVar(&l.MaxExemplarsPerSeries, "validation.max-exemplars-per-series", 10, "Most exemplars kept per series in one push; extra exemplars are dropped and counted.")
}

// Validate checks the limits for values that cannot work.
func (l *Limits) Validate() error {
	switch {
	case l.MaxLabelNamesPerSeries < 1:
		return fmt.Errorf("-validation.max-label-names-per-series must be at least 1, got %d", l.MaxLabelNamesPerSeries)
	case l.MaxLabelNameLength < 1:
		return fmt.Errorf("-validation.max-length-label-name must be at least 1, got %d", l.MaxLabelNameLength)
	case l.MaxLabelValueLength < 1:
		return fmt.Errorf("-validation.max-length-label-value must be at least 1, got %d", l.MaxLabelValueLength)
	case l.MaxMetadataLength < 1:
		return fmt.Errorf("-validation.max-metadata-length must be at least 1, got %d", l.MaxMetadataLength)
	case l.CreationGracePeriod < 0:
		return fmt.Errorf("-validation.create-grace-period must not be negative, got %s", l.CreationGracePeriod)
	case l.PastGracePeriod < 0:
		return fmt.Errorf("-validation.past-grace-period must not be negative, got %s", l.PastGracePeriod)
	case l.MaxExemplarsPerSeries < 0:
		return fmt.Errorf("-validation.max-exemplars-per-series must not be negative, got %d", l.MaxExemplarsPerSeries)
	}
	return nil
}

// Overrides gives each tenant its effective limits. Until the runtime
// overrides file exists every tenant gets the defaults.
type Overrides struct {
	defaults Limits
}

// NewOverrides returns Overrides that hand every tenant the defaults.
func NewOverrides(defaults Limits) *Overrides {
	return &Overrides{defaults: defaults}
}

// For returns the limits of tenant. The result must not be modified.
func (o *Overrides) For(tenant string) *Limits {
	return &o.defaults
}
