package main

import (
	"fmt"
	"math"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// seriesPerHost is how many series one simulated node_exporter exposes; the
// instance label changes every seriesPerHost series.
const seriesPerHost = 2000

// family is one node_exporter-like metric family with three labels of its own.
// Together with the seven shared labels (__name__ included) every series has
// ten labels. No two families have the same three label names, so series stay
// apart even without __name__: rate() over every series, which drops the
// name, yields no duplicate label sets.
type family struct {
	name    string
	counter bool
	labels  [3]string
	values  func(k int) [3]string // injective in k: it tells the family's series apart
}

var cpuModes = [8]string{"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"}

var families = []family{
	{"node_cpu_seconds_total", true, [3]string{"cpu", "mode", "package"}, func(k int) [3]string {
		return [3]string{strconv.Itoa(k / 8), cpuModes[k%8], strconv.Itoa(k / 64)}
	}},
	{"node_network_receive_bytes_total", true, [3]string{"device", "driver", "duplex"}, func(k int) [3]string {
		return [3]string{"eth" + strconv.Itoa(k), "virtio_net", "full"}
	}},
	{"node_network_transmit_bytes_total", true, [3]string{"device", "driver", "operstate"}, func(k int) [3]string {
		return [3]string{"eth" + strconv.Itoa(k), "virtio_net", "up"}
	}},
	{"node_disk_read_bytes_total", true, [3]string{"device", "model", "serial"}, func(k int) [3]string {
		return [3]string{"nvme" + strconv.Itoa(k/4) + "n" + strconv.Itoa(k%4), "Samsung SSD 980 PRO", fmt.Sprintf("S5GXNF0R%06d", k)}
	}},
	{"node_disk_written_bytes_total", true, [3]string{"device", "model", "wwn"}, func(k int) [3]string {
		return [3]string{"nvme" + strconv.Itoa(k/4) + "n" + strconv.Itoa(k%4), "Samsung SSD 980 PRO", fmt.Sprintf("eui.002538b%09d", k)}
	}},
	{"node_filesystem_avail_bytes", false, [3]string{"device", "fstype", "mountpoint"}, func(k int) [3]string {
		return [3]string{"/dev/sda" + strconv.Itoa(k), "ext4", "/srv/vol" + strconv.Itoa(k)}
	}},
	{"node_filesystem_size_bytes", false, [3]string{"device", "mountpoint", "uuid"}, func(k int) [3]string {
		return [3]string{"/dev/sda" + strconv.Itoa(k), "/srv/vol" + strconv.Itoa(k), fmt.Sprintf("4f1c2a9e-%04d-4b7d-9c3e-5a6b7c8d9e0f", k)}
	}},
	{"node_interrupts_total", true, [3]string{"cpu", "devices", "type"}, func(k int) [3]string {
		return [3]string{strconv.Itoa(k % 16), "virtio" + strconv.Itoa(k/16) + "-input.0", "edge"}
	}},
	{"node_hwmon_temp_celsius", false, [3]string{"chip", "sensor", "label"}, func(k int) [3]string {
		return [3]string{"platform_coretemp_" + strconv.Itoa(k/16), "temp" + strconv.Itoa(k%16), "core_" + strconv.Itoa(k)}
	}},
	{"node_softnet_processed_total", true, [3]string{"cpu", "queue", "kind"}, func(k int) [3]string {
		return [3]string{strconv.Itoa(k / 4), strconv.Itoa(k % 4), "rx"}
	}},
}

var (
	envs    = [3]string{"prod", "staging", "dev"}
	regions = [4]string{"eu-west-1", "us-east-1", "us-west-2", "ap-south-1"}
	jobs    = [5]string{"node", "node-db", "node-web", "node-batch", "node-edge"}
)

// seriesLabels returns the ten labels of series i, sorted by name as remote
// write requires.
func seriesLabels(i int) [][2]string {
	host := i / seriesPerHost
	j := i % seriesPerHost
	f := families[j%len(families)]
	k := j / len(families)
	vals := f.values(k)
	ls := [][2]string{
		{"__name__", f.name},
		{f.labels[0], vals[0]},
		{f.labels[1], vals[1]},
		{f.labels[2], vals[2]},
		{"cluster", "bench"},
		{"env", envs[host%len(envs)]},
		{"instance", fmt.Sprintf("host-%05d:9100", host)},
		{"job", jobs[host%len(jobs)]},
		{"region", regions[host%len(regions)]},
		{"zone", regions[host%len(regions)] + string(rune('a'+host%3))},
	}
	sortLabels(ls)
	return ls
}

func sortLabels(ls [][2]string) {
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && ls[j][0] < ls[j-1][0]; j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}

// isCounter tells whether series i's values only go up.
func isCounter(i int) bool {
	return families[(i%seriesPerHost)%len(families)].counter
}

// sampleLen is the encoded size of a prompb.Sample with a 6-byte timestamp:
// tag+fixed64 value, tag+varint timestamp. Every millisecond timestamp
// between 2^35 (1971) and 2^42 (2109) takes six varint bytes, so a sample
// can be rewritten in place for every round.
const (
	tsVarintLen = 6
	sampleLen   = 1 + 8 + 1 + tsVarintLen
)

// batch is the uncompressed WriteRequest of one group of series, encoded once
// with initial samples; each round rewrites the samples in place.
type batch struct {
	body    []byte
	offsets []int     // where each series' sample message starts in body
	values  []float64 // the value each series had in the previous round
	incs    []float64 // per-round increment (counters) or amplitude (gauges)
	counter []bool
	first   int // index of the batch's first series
}

// newBatch encodes the series [first, first+n) as a remotewrite 1.0
// WriteRequest: field 1 TimeSeries{1: Label{1: name, 2: value}..., 2: Sample{1: value, 2: timestamp}}.
// extra labels (-mode=rules: the tenant's) are added to every series.
func newBatch(first, n int, extra ...[2]string) *batch {
	b := &batch{offsets: make([]int, n), values: make([]float64, n), incs: make([]float64, n), counter: make([]bool, n), first: first}
	var ts []byte
	for s := range n {
		i := first + s
		ts = ts[:0]
		ls := seriesLabels(i)
		if len(extra) > 0 {
			ls = append(ls, extra...)
			sortLabels(ls)
		}
		for _, l := range ls {
			var lb []byte
			lb = protowire.AppendTag(lb, 1, protowire.BytesType)
			lb = protowire.AppendString(lb, l[0])
			lb = protowire.AppendTag(lb, 2, protowire.BytesType)
			lb = protowire.AppendString(lb, l[1])
			ts = protowire.AppendTag(ts, 1, protowire.BytesType)
			ts = protowire.AppendBytes(ts, lb)
		}
		ts = protowire.AppendTag(ts, 2, protowire.BytesType)
		ts = protowire.AppendVarint(ts, sampleLen)
		sampleAt := len(ts)
		ts = append(ts, make([]byte, sampleLen)...)
		b.body = protowire.AppendTag(b.body, 1, protowire.BytesType)
		b.body = protowire.AppendVarint(b.body, uint64(len(ts)))
		b.offsets[s] = len(b.body) + sampleAt
		b.body = append(b.body, ts...)

		h := mix(uint64(i))
		b.counter[s] = isCounter(i)
		b.incs[s] = float64(h%1000+1) / 8 // 0.125 .. 125, exact in binary
		b.values[s] = float64(h>>20%100000) * 1.5
	}
	return b
}

// setRound writes the samples of round r at timestamp tsMillis into body:
// counters grow by a jittered increment, gauges wobble around their level.
// tsMillis must take tsVarintLen varint bytes (checkTimestamps).
func (b *batch) setRound(r int, tsMillis int64) {
	if n := protowire.SizeVarint(uint64(tsMillis)); n != tsVarintLen {
		panic(fmt.Sprintf("BUG: timestamp %d takes %d varint bytes, want %d", tsMillis, n, tsVarintLen))
	}
	for s, off := range b.offsets {
		h := mix(uint64(b.first+s)<<20 ^ uint64(r))
		v := b.values[s]
		if b.counter[s] {
			v += b.incs[s] * float64(h%16+1)
			b.values[s] = v
		} else {
			v += b.incs[s] * (float64(h%64) - 32)
		}
		p := b.body[off : off : off+sampleLen]
		p = protowire.AppendTag(p, 1, protowire.Fixed64Type)
		p = protowire.AppendFixed64(p, math.Float64bits(v))
		p = protowire.AppendTag(p, 2, protowire.VarintType)
		protowire.AppendVarint(p, uint64(tsMillis))
	}
}

// checkTimestamps reports timestamps that cannot be written in place.
func checkTimestamps(first, last int64) error {
	for _, ts := range []int64{first, last} {
		if n := protowire.SizeVarint(uint64(ts)); ts < 0 || n != tsVarintLen {
			return fmt.Errorf("timestamp %d ms takes %d varint bytes; the generator needs %d (years 1971 to 2109)", ts, n, tsVarintLen)
		}
	}
	return nil
}

// mix is splitmix64's finalizer: a cheap, well-spread hash.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
