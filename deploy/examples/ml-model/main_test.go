package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strata-metrics/strata/internal/procs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRunServesAndStops: run trains, serves with its load loop, and returns
// nil once its context ends, leaving no goroutine behind (TestMain checks).
func TestRunServesAndStops(t *testing.T) {
	addr, err := procs.FreeAddr()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen-address=" + addr, "-load.rate=100", "-train.samples=200"}, io.Discard)
	}()
	procs.WaitHTTPT(t, nil, "http://"+addr+"/healthz", 30*time.Second)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return 30s after its context ended")
	}
}

func TestFlagValidation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"drift above 1", []string{"-drift=1.5"}, "-drift: want a number from 0 to 1"},
		{"drift not a number", []string{"-drift=x"}, "-drift"},
		{"negative rate", []string{"-load.rate=-1"}, "-load.rate=-1"},
		{"rate too high", []string{"-load.rate=5000"}, "-load.rate=5000: want 0 to 1000"},
		{"no concurrency", []string{"-load.concurrency=0"}, "-load.concurrency=0"},
		{"too few samples", []string{"-train.samples=1"}, "-train.samples=1"},
		{"log level", []string{"-log.level=loud"}, "-log.level"},
		{"unknown flag", []string{"-nope"}, "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(t.Context(), tc.args, io.Discard)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
