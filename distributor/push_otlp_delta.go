package distributor

import (
	"context"
	"fmt"

	deltatocumulative "github.com/open-telemetry/opentelemetry-collector-contrib/processor/deltatocumulativeprocessor"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/strata-metrics/strata/limits"
)

// Delta to cumulative conversion, for tenants whose otlp_delta_temporality
// is "convert": the OpenTelemetry Collector's deltatocumulative processor,
// as Prometheus' own receiver uses it, one per tenant (its state is keyed
// by stream identity, which does not name the tenant: shared, two tenants
// sending the same stream would add up). The state lives in this
// distributor: every push of one stream must reach it, or the sums restart.

// deltaJob is one push's translation, carried through the processor to
// its next consumer by the context.
type deltaJob struct {
	lim *limits.Limits
	app *requestAppender
	err error
}

type deltaJobKey struct{}

// convertDelta runs md through tenantID's processor, which translates its
// cumulative result into app.
func (d *Distributor) convertDelta(ctx context.Context, tenantID string, lim *limits.Limits, md pmetric.Metrics, app *requestAppender) error {
	p, err := d.deltaProcessor(tenantID, lim)
	if err != nil {
		return err
	}
	job := &deltaJob{lim: lim, app: app}
	if err := p.ConsumeMetrics(context.WithValue(ctx, deltaJobKey{}, job), md); err != nil {
		return fmt.Errorf("convert delta to cumulative: %w", err)
	}
	return job.err
}

func (d *Distributor) deltaProcessor(tenantID string, lim *limits.Limits) (processor.Metrics, error) {
	d.deltaMu.Lock()
	defer d.deltaMu.Unlock()
	if p, ok := d.delta[tenantID]; ok {
		return p, nil
	}
	if d.deltaClosed {
		return nil, fmt.Errorf("distributor is shutting down")
	}
	next, err := consumer.NewMetrics(func(ctx context.Context, md pmetric.Metrics) error {
		job := ctx.Value(deltaJobKey{}).(*deltaJob)
		job.err = d.translateOTLP(ctx, md, job.lim, job.app)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delta consumer: %w", err)
	}
	fac := deltatocumulative.NewFactory()
	cfg := fac.CreateDefaultConfig().(*deltatocumulative.Config)
	if lim.MaxGlobalSeriesPerUser > 0 {
		cfg.MaxStreams = lim.MaxGlobalSeriesPerUser // the tenant cannot store more
	}
	set := processor.Settings{
		ID:                component.NewIDWithName(fac.Type(), tenantID),
		TelemetrySettings: component.TelemetrySettings{MeterProvider: noop.NewMeterProvider()},
	}
	p, err := fac.CreateMetrics(context.Background(), set, cfg, next)
	if err != nil {
		return nil, fmt.Errorf("create delta-to-cumulative processor: %w", err)
	}
	if err := p.Start(context.Background(), nil); err != nil {
		return nil, fmt.Errorf("start delta-to-cumulative processor: %w", err)
	}
	if d.delta == nil {
		d.delta = map[string]processor.Metrics{}
	}
	d.delta[tenantID] = p
	return p, nil
}

// stopDelta shuts every tenant's processor down (Run, on its way out).
func (d *Distributor) stopDelta() {
	d.deltaMu.Lock()
	defer d.deltaMu.Unlock()
	d.deltaClosed = true
	for id, p := range d.delta {
		_ = p.Shutdown(context.Background())
		delete(d.delta, id)
	}
}
