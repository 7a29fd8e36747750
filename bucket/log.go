package bucket

import (
	"context"
	"fmt"
	"log/slog"
)

// kitLogger hands the objstore providers, which log through go-kit's
// log.Logger, the process' slog.Logger: "level" and "msg" become the
// record's level and message, every other pair an attribute.
type kitLogger struct{ l *slog.Logger }

func (k kitLogger) Log(keyvals ...any) error {
	lvl, msg := slog.LevelInfo, ""
	attrs := make([]slog.Attr, 0, len(keyvals)/2)
	for i := 0; i+1 < len(keyvals); i += 2 {
		key := fmt.Sprint(keyvals[i])
		switch key {
		case "level":
			lvl = kitLevel(fmt.Sprint(keyvals[i+1]))
		case "msg":
			msg = fmt.Sprint(keyvals[i+1])
		default:
			attrs = append(attrs, slog.Any(key, keyvals[i+1]))
		}
	}
	k.l.LogAttrs(context.Background(), lvl, msg, attrs...)
	return nil
}

func kitLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
