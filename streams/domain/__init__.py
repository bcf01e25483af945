"""Business rules: plain Python over plain data, no Kafka.

The agents (streams.topology.agents) and the reference model (streams.domain.model) both call these
rules, so the model is the same logic without Kafka rather than a second copy of it.
"""
