package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
)

// strata backfill has flags of its own: the server's are neither parsed
// nor needed, and its errors say how to call it.
func TestBackfillCommandFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
		wantOut string
	}{
		{"help", []string{"backfill", "-h"}, flag.ErrHelp.Error(), "Usage: strata backfill -url=URL"},
		{"no url", []string{"backfill", "dir"}, "backfill: want -url and one TSDB directory or OpenMetrics file", "-rate-limit-bytes"},
		{"server flag", []string{"backfill", "-target=all", "-url=http://127.0.0.1:1", "dir"}, "flag provided but not defined: -target", ""},
		{"missing input", []string{"backfill", "-url=http://127.0.0.1:1", "does-not-exist"}, "backfill: stat does-not-exist: no such file or directory", ""},
		{"bad basic auth", []string{"backfill", "-url=http://127.0.0.1:1", "-basic-auth=nopassword", "."}, "backfill: -basic-auth wants USER:PASSWORD", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, &stdout, &stderr)
			require.Error(t, err)
			require.EqualError(t, err, tc.wantErr)
			if tc.name == "help" {
				require.True(t, errors.Is(err, flag.ErrHelp))
			}
			require.Contains(t, stderr.String(), tc.wantOut)
		})
	}
}
