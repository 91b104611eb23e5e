package main

// The transactions scenario: three transactions of `count` records each on an existing topic
// (record i to partition i % partitions, values go-c1-i, go-a-i, go-c2-i), the middle one
// aborted; then a read_committed consumer reads the topic from the start. Prints the values it
// read per partition as JSON: {"read_committed": {"0": [...], ...}}.

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func runTxn(ctx context.Context, brokers, topic string, partitions, count int) {
	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers),
		kgo.TransactionalID(fmt.Sprintf("go-%s", topic)),
		kgo.TransactionTimeout(60*time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		fail("producer: %v", err)
	}
	for _, txn := range []struct {
		name   string
		commit kgo.TransactionEndTry
	}{{"c1", kgo.TryCommit}, {"a", kgo.TryAbort}, {"c2", kgo.TryCommit}} {
		if err := producer.BeginTransaction(); err != nil {
			fail("begin %s: %v", txn.name, err)
		}
		recs := make([]*kgo.Record, count)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: topic, Partition: int32(i % partitions),
				Value: []byte(fmt.Sprintf("go-%s-%d", txn.name, i))}
		}
		if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			fail("produce %s: %v", txn.name, err)
		}
		if err := producer.EndTransaction(ctx, txn.commit); err != nil {
			fail("end %s: %v", txn.name, err)
		}
	}
	producer.Close()

	offsets := map[string]map[int32]kgo.Offset{topic: {}}
	for p := 0; p < partitions; p++ {
		offsets[topic][int32(p)] = kgo.NewOffset().AtStart()
	}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumePartitions(offsets),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		fail("consumer: %v", err)
	}
	defer consumer.Close()
	got := map[string][]string{}
	for p := 0; p < partitions; p++ {
		got[strconv.Itoa(p)] = []string{}
	}
	for total := 0; total < 2*count; {
		fetches := consumer.PollFetches(ctx)
		if errs := fetches.Errors(); len(errs) > 0 {
			fail("fetch: %v", errs)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			key := strconv.Itoa(int(r.Partition))
			got[key] = append(got[key], string(r.Value))
			total++
		})
	}
	out, _ := json.Marshal(map[string]any{"read_committed": got})
	fmt.Println(string(out))
}
