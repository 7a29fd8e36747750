package ingesterpb

import "slices"

// MergeStrings returns the sorted union of lists, at most limit (0: all):
// how the answers to LabelNames and LabelValues combine, whoever merges
// them (the querier over ingesters and store-gateways, a store-gateway over
// its blocks). Each answer holds its first limit strings in order, so the
// union's first limit are right.
func MergeStrings(lists [][]string, limit int) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}
