// kafkajs against one server: createTopics, produce, a consumer group, committed offsets,
// deleteTopicRecords, alterConfigs / describeConfigs, deleteTopics. Prints one JSON summary
// line; any failure exits non-zero with the error on stderr.
//
//   node check.js BOOTSTRAP PREFIX
//
// kafkajs comes from npm into the cache (scripts/test.sh, tests/conftest.py `kafkajs`), found
// through NODE_PATH.
'use strict';

const { Kafka, logLevel, ConfigResourceTypes } = require('kafkajs');

const [bootstrap, prefix] = process.argv.slice(2);
const kafka = new Kafka({
  clientId: 'kop-kafkajs-check',
  brokers: [bootstrap],
  logLevel: logLevel.NOTHING,
  retry: { retries: 10, initialRetryTime: 200 },
});

function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  const topic = `${prefix}-t`;
  const groupId = `${prefix}-g`;
  await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });

  const producer = kafka.producer();
  await producer.connect();
  const messages = Array.from({ length: 10 }, (_, i) => ({
    key: `k${i}`,
    value: `v${i}`,
    partition: i % 2,
  }));
  await producer.send({ topic, messages });
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const got = [];
  await within(
    60000,
    'consuming',
    new Promise((resolve, reject) => {
      consumer
        .run({
          eachMessage: async ({ message }) => {
            got.push(message.value.toString());
            if (got.length >= messages.length) resolve();
          },
        })
        .catch(reject);
    }),
  );
  await consumer.disconnect();
  const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
  const committedTotal = committed[0].partitions.reduce((n, p) => n + Number(p.offset), 0);

  await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '3' }] });
  const offsets = await admin.fetchTopicOffsets(topic);
  const low0 = Number(offsets.find((p) => p.partition === 0).low);

  await admin.alterConfigs({
    validateOnly: false,
    resources: [
      {
        type: ConfigResourceTypes.TOPIC,
        name: topic,
        configEntries: [{ name: 'retention.ms', value: '3600000' }],
      },
    ],
  });
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms'] }],
  });
  const retention = described.resources[0].configEntries.find(
    (e) => e.configName === 'retention.ms',
  ).configValue;

  await admin.deleteTopics({ topics: [topic] });
  const deleted = !(await admin.listTopics()).includes(topic);
  await admin.disconnect();
  console.log(
    JSON.stringify({
      consumed: got.sort(),
      committed: committedTotal,
      low0,
      retention,
      deleted,
    }),
  );
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
