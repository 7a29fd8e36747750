package storequery

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func nowFunc() time.Time { return time.Unix(0, 0) }
