// kop-go-check: produces records with franz-go and reads them back by partition, checking
// every byte. Exit code 0 and a JSON summary on stdout on success; non-zero with the reason.
// --mode txn runs the transactions scenario of txn.go instead.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kop-go-check: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "bootstrap servers")
	topic := flag.String("topic", "go-check", "topic to create and use")
	partitions := flag.Int("partitions", 3, "partitions of the topic")
	count := flag.Int("records", 3000, "records to produce")
	codec := flag.String("compression", "none", "none, gzip, snappy, lz4 or zstd")
	mode := flag.String("mode", "roundtrip", "roundtrip, or txn (commit, abort, commit; see txn.go)")
	flag.Parse()

	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	c, ok := codecs[*codec]
	if !ok {
		fail("unknown compression %q", *codec)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if *mode == "txn" {
		runTxn(ctx, *brokers, *topic, *partitions, *count)
		return
	}

	admin, err := kgo.NewClient(kgo.SeedBrokers(*brokers))
	if err != nil {
		fail("client: %v", err)
	}
	adm := kadm.NewClient(admin)
	created, err := adm.CreateTopic(ctx, int32(*partitions), 1, nil, *topic)
	if err != nil || created.Err != nil {
		fail("create topic: %v %v", err, created.Err)
	}
	admin.Close()

	producer, err := kgo.NewClient(kgo.SeedBrokers(*brokers), kgo.ProducerBatchCompression(c),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		fail("producer: %v", err)
	}
	want := make([][]*kgo.Record, *partitions)
	for i := 0; i < *count; i++ {
		p := int32(i % *partitions)
		r := &kgo.Record{
			Topic:     *topic,
			Partition: p,
			Key:       []byte(fmt.Sprintf("key-%d", i)),
			Value:     bytes.Repeat([]byte{byte(i)}, i%700),
			Headers:   []kgo.RecordHeader{{Key: "i", Value: []byte(fmt.Sprint(i))}},
		}
		want[p] = append(want[p], r)
		producer.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				fail("produce: %v", err)
			}
		})
	}
	if err := producer.Flush(ctx); err != nil {
		fail("flush: %v", err)
	}
	producer.Close()

	offsets := map[string]map[int32]kgo.Offset{*topic: {}}
	for p := 0; p < *partitions; p++ {
		offsets[*topic][int32(p)] = kgo.NewOffset().AtStart()
	}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(*brokers), kgo.ConsumePartitions(offsets))
	if err != nil {
		fail("consumer: %v", err)
	}
	defer consumer.Close()
	got := make([][]*kgo.Record, *partitions)
	total := 0
	for total < *count {
		fetches := consumer.PollFetches(ctx)
		if errs := fetches.Errors(); len(errs) > 0 {
			fail("fetch: %v", errs)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], r)
			total++
		})
	}
	for p := range want {
		if len(got[p]) != len(want[p]) {
			fail("partition %d: got %d records, want %d", p, len(got[p]), len(want[p]))
		}
		for i, w := range want[p] {
			g := got[p][i]
			if g.Offset != int64(i) || !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) ||
				len(g.Headers) != 1 || string(g.Headers[0].Value) != string(w.Headers[0].Value) {
				fail("partition %d offset %d: record differs", p, i)
			}
		}
	}
	out, _ := json.Marshal(map[string]any{"records": total, "partitions": *partitions, "compression": *codec})
	fmt.Println(string(out))
}
