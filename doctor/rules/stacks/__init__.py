"""Per-stack rules (6xx): Dynamo 1.x, SGLang, llm-d, LMCache."""
