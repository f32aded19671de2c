"""The machinery around the streaming lesson (integration/02), one module per concern.

The pattern script keeps what a practitioner writes: the Kafka source, parse and validate, the
watermark dedup, the idempotent sinks, the crash and restart, the proofs. What makes that lesson
runnable and measurable on a laptop lives here:

- `events`: the planned clickstream (redeliveries, malformed and late records) and its ground truth;
- `topics`: creating a topic and waiting until its leaders answer, reading end offsets;
- `producer`: an idempotent producer that paces records at a rate, with warm-up rounds;
- `crash`: where and when a sink fails on purpose, and recognising that failure;
- `sink_log`: the operations log every silver sink call writes, and the sink wrapper that times
  its stages, crashes it on plan and logs it;
- `driver`: running the queries while the producer sends, restarting them after the crash;
- `live_view`: the terminal dashboard while the stream runs;
- `latency`: the stream as the stores recorded it, and latency/throughput per phase;
- `dashboard`: the offline HTML snapshot from the Snowflake views.
"""
