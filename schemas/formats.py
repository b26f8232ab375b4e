"""The input formats the doctor reads (`--format`), in one place: the readers dispatch on them and the command line
offers them. Imports nothing, so the command line can name them before any reader loads."""

FORMATS = ("auto", "dynamo-v0", "kubernetes", "compose", "llm-d", "script", "trtllm", "helm-values")
