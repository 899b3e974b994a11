"""Drives a running codelm server with the official `openai` Python client.

Usage: python openai_client.py BASE_URL MODEL_ID. Exits non-zero on the first
failed check. Run by tests/server.rs (the_official_openai_client_works).
"""
import sys

import openai
from openai import OpenAI

base_url, model = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base_url, api_key="unused", max_retries=0)

models = client.models.list()
assert [m.id for m in models.data] == [model], models

# Completions, plain and streamed: the same greedy text.
plain = client.completions.create(model=model, prompt="def add(a, b):", max_tokens=10, temperature=0)
assert plain.object == "text_completion"
text = plain.choices[0].text
assert text and plain.choices[0].finish_reason in ("stop", "length"), plain
assert plain.usage.completion_tokens == 10 or plain.choices[0].finish_reason == "stop", plain.usage

streamed = "".join(
    chunk.choices[0].text
    for chunk in client.completions.create(
        model=model, prompt="def add(a, b):", max_tokens=10, temperature=0, stream=True
    )
    if chunk.choices
)
assert streamed == text, (streamed, text)

# Fill in the middle with `suffix`, n samples and a seed.
infill = client.completions.create(
    model=model, prompt="def f(x):\n    return ", suffix="\n", max_tokens=6, n=2, seed=5, temperature=0.8
)
assert len(infill.choices) == 2 and {c.index for c in infill.choices} == {0, 1}

# Chat, plain and streamed, with usage in the last chunk.
messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Reverse a string in Python."}]
chat = client.chat.completions.create(model=model, messages=messages, max_tokens=12, temperature=0)
reply = chat.choices[0].message
assert reply.role == "assistant" and reply.content, chat
pieces, usage = [], None
for chunk in client.chat.completions.create(
    model=model, messages=messages, max_tokens=12, temperature=0, stream=True,
    stream_options={"include_usage": True},
):
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
assert "".join(pieces) == reply.content, (pieces, reply.content)
assert usage is not None and usage.prompt_tokens == chat.usage.prompt_tokens, usage

# Errors surface as the client's typed exceptions.
try:
    client.completions.create(model="no-such-model", prompt="a", max_tokens=1)
    raise AssertionError("an unknown model was accepted")
except openai.NotFoundError as err:
    assert err.status_code == 404
try:
    client.completions.create(model=model, prompt="a", max_tokens=1, temperature=7)
    raise AssertionError("temperature 7 was accepted")
except openai.BadRequestError as err:
    assert "temperature" in str(err)

print("openai client: all checks passed")
