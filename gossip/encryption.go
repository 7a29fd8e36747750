package gossip

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Gossip encryption. With -memberlist.encryption-keys-file every gossip
// packet and every TCP stream (changes, push/pull of the full state) is
// sealed with AES-GCM under the first key of the file and opened with any
// key of it; memberlist then also refuses everything that is not
// encrypted. A process without a key of the set cannot join, read the
// rings or announce itself as an owner of anything.
//
// Rotation without a restart, one step at a time on every member (the file
// is read again every encryptionReload):
//  1. add the new key as the second line (everyone can open it),
//  2. move it to the first line (everyone seals with it),
//  3. remove the old key.
//
// Keys are never given on the command line (it is readable in /proc and in
// process listings), only in the file.

// encryptionReload is how often the keys file is read again.
const encryptionReload = 30 * time.Second

// encryptionOverhead is what AES-GCM sealing adds to a packet in
// memberlist's encryption version 1: a version byte, a 12-byte nonce and a
// 16-byte tag.
const encryptionOverhead = 1 + 12 + 16

// readKeys parses a keys file: one base64 key per line, blank lines and
// lines starting with # ignored. The first key is the primary.
func readKeys(path string) ([][]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read -memberlist.encryption-keys-file: %w", err)
	}
	var keys [][]byte
	for i, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("-memberlist.encryption-keys-file line %d: not base64: %w", i+1, err)
		}
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return nil, fmt.Errorf("-memberlist.encryption-keys-file line %d: key is %d bytes, want 16, 24 or 32 (AES-128, -192 or -256)", i+1, n)
		}
		if slices.ContainsFunc(keys, func(o []byte) bool { return bytes.Equal(o, k) }) {
			return nil, fmt.Errorf("-memberlist.encryption-keys-file line %d: key repeated", i+1)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("-memberlist.encryption-keys-file holds no key")
	}
	return keys, nil
}

// newKeyring is the keyring of the keys file, or nil without one.
func (kv *KV) newKeyring() (*memberlist.Keyring, error) {
	if kv.cfg.EncryptionKeysFile == "" {
		return nil, nil
	}
	keys, err := readKeys(kv.cfg.EncryptionKeysFile)
	if err != nil {
		return nil, err
	}
	ring, err := memberlist.NewKeyring(keys[1:], keys[0])
	if err != nil {
		return nil, fmt.Errorf("-memberlist.encryption-keys-file: %w", err)
	}
	kv.m.encryptionKeys.Set(float64(len(keys)))
	return ring, nil
}

// reloadKeysLoop applies changes of the keys file to ring until ctx ends.
// A file that cannot be read or parsed keeps the keys in force (logged and
// counted): a half-written file must not cut this member off.
func (kv *KV) reloadKeysLoop(ctx context.Context, ring *memberlist.Keyring) {
	every := encryptionReload
	if kv.keysReload > 0 {
		every = kv.keysReload
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := kv.applyKeys(ring); err != nil {
				kv.m.encryptionReloadFailures.Inc()
				kv.log.Error("reload gossip encryption keys; keeping the keys in force", "err", err)
			}
		}
	}
}

// applyKeys makes ring hold exactly the keys of the file, the first one
// primary: add the new ones, switch the primary, then remove the old ones,
// so that no packet sealed with a key still in use goes unopened.
func (kv *KV) applyKeys(ring *memberlist.Keyring) error {
	keys, err := readKeys(kv.cfg.EncryptionKeysFile)
	if err != nil {
		return err
	}
	have := ring.GetKeys()
	same := len(have) == len(keys)
	for i := 0; same && i < len(keys); i++ {
		same = bytes.Equal(have[i], keys[i]) // GetKeys lists the primary first
	}
	if same {
		return nil
	}
	for _, k := range keys {
		if err := ring.AddKey(k); err != nil {
			return fmt.Errorf("add gossip key: %w", err)
		}
	}
	if err := ring.UseKey(keys[0]); err != nil {
		return fmt.Errorf("use gossip key: %w", err)
	}
	for _, k := range have {
		if !slices.ContainsFunc(keys, func(n []byte) bool { return bytes.Equal(n, k) }) {
			if err := ring.RemoveKey(k); err != nil {
				return fmt.Errorf("remove gossip key: %w", err)
			}
		}
	}
	kv.m.encryptionKeys.Set(float64(len(keys)))
	kv.log.Info("gossip encryption keys reloaded", "keys", len(keys))
	return nil
}
