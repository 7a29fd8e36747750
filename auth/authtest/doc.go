// Package authtest makes certificate authorities, certificates and keys for
// tests of TLS servers and clients, written as PEM files in a test's
// temporary directory.
//
// Flow: test code only; auth, server and clientpool tests share it.
// Owns: throwaway ECDSA P-256 keys and certificates valid for loopback.
// Does not: anything a running process needs.
package authtest
