"""Request bodies of the OpenAI and text-embeddings-inference routes, and their response bodies."""

from __future__ import annotations

import base64
from typing import Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr

from .service import Embeddings

TextInput = Union[StrictStr, list[StrictStr]]


class OpenAIEmbeddingRequest(BaseModel):
    """POST /v1/embeddings, as OpenAI's embeddings API (token-id inputs are not accepted)."""

    model_config = ConfigDict(extra="forbid")

    input: TextInput
    model: StrictStr | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = None
    user: StrictStr | None = None


class TEIEmbedRequest(BaseModel):
    """POST /embed, as text-embeddings-inference. LAM's embeddings are unit vectors whatever `normalize` says."""

    model_config = ConfigDict(extra="forbid")

    inputs: TextInput
    normalize: StrictBool = True
    truncate: StrictBool | None = None
    truncation_direction: Literal["Right", "right"] = "Right"
    dimensions: StrictInt | None = None


def as_texts(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def openai_response(result: Embeddings, encoding_format: str, model_name: str) -> dict:
    """The OpenAI embeddings response; base64 holds little-endian float32 bytes."""
    if encoding_format == "base64":
        vectors = [base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") for row in result.rows]
    else:
        vectors = result.rows.astype(np.float32).tolist()
    return {"object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            "model": model_name,
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}}
