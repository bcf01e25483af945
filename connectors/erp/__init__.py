"""The ERP sink: erp.commands executed in an ERP, answers on erp.results.

`adapter` is the interface every ERP implements, one module per ERP beside it; `sink` is
the Kafka service that drives an adapter with concurrency caps, pacing, retries and
dead letters.
"""
