// Package lint holds tests of the repository's structure, not of its
// behaviour: which packages may import which, names that are not allowed,
// and the doc.go every package opens with.
//
// Flow: none; `go test ./internal/lint` reads `go list` of the whole module.
// Owns: the import rules of STYLE.md, written as code so that a change that
// breaks one fails `make test` with the package and the rule it broke.
// Does not: check formatting or vet (make lint does).
package lint
