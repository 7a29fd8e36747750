// Command strata is the one Strata binary.
//
// Flow: flags and -config.file → Config → component constructors → one
// errgroup that runs them until SIGINT or SIGTERM, then shuts them down in
// order: stop taking requests, drain, close storage, leave the ring.
// Owns: the process wiring and -target.
// Does not: hold component logic; each component lives in its own package.
package main
