"""Boundary kinds inferred from standard span conventions.

Spans written by flowmap carry ``flowmap.boundary``; spans from other instrumentations
(OpenTelemetry contrib, OpenLLMetry, OpenInference, other languages) do not, but their
standard attributes say what they cross, so the analyzer judges them too:

=====================================  ==========================================
convention                             boundary
=====================================  ==========================================
``gen_ai.operation.name``              ``execute_tool`` → tool; ``invoke_agent``,
                                       ``invoke_workflow`` naming its workflow
                                       or agent → agent (and
                                       ``create_agent`` on a CLIENT span);
                                       ``chat``, ``text_completion``,
                                       ``generate_content``, ``embeddings`` → llm
                                       (and Semantic Kernel's
                                       ``text_completions``,
                                       ``chat.completions``…);
                                       ``retrieval`` (and OpenLLMetry's
                                       ``vector_db_retrieve``) → vector;
                                       OpenLIT's ``memory`` (and
                                       ``memory_add``, ``memory_search``…)
                                       → memory; its ``invoke_workflow``
                                       with ``gen_ai.framework.component.type``
                                       ``vector_store`` → vector,
                                       ``graph_store``, ``memory_creation``,
                                       ``procedural_memory`` → memory, of
                                       LlamaIndex's ``vector_store_add``,
                                       ``vector_store_delete`` → vector; its
                                       other framework steps (naming no
                                       workflow or agent) → none, as
                                       CrewAI's ``invoke_agent`` naming no
                                       agent (a Flow's step, a crew's or a
                                       task's run around its agent's)
``mcp.method.name`` (Model Context     ``tools/call`` → tool, ``tools/list`` →
Protocol)                              tool.catalog (a server's tool list shown
                                       to a model); ``resources/read``,
                                       ``prompts/get`` on a CLIENT/SERVER span
                                       → http.client/http.server; other
                                       methods (initialize, notifications) → none
``openinference.span.kind``            TOOL → tool, AGENT → agent, LLM and
                                       EMBEDDING → llm, RETRIEVER → vector;
                                       CHAIN, RERANKER, GUARDRAIL, EVALUATOR,
                                       PROMPT → none (no data leaves the process)
``traceloop.span.kind`` (OpenLLMetry)  tool → tool, agent → agent
``ai.operationId`` (Vercel AI SDK,     ``ai.toolCall`` → tool; the provider calls
before it wrote ``gen_ai.*``)          (``ai.generateText.doGenerate``,
                                       ``….doStream``, ``….doEmbed``,
                                       ``ai.rerank.doRerank``) → llm
``mastra.operationId`` (Mastra's        ``mastra.stream.toolCall`` → tool; its
OpenTelemetry telemetry, 0.x)          provider calls (``….aisdk.doStream``) →
                                       llm; an agent's run (``agent.generate``,
                                       ``agent.stream``…: their
                                       ``<name>.argument.0``) → agent
``genkit:metadata:subtype`` (Genkit)   tool → tool, model, background-model,
                                       embedder, reranker → llm, retriever,
                                       indexer → vector, agent → agent; flow,
                                       prompt, util… → none
Haystack's own tracer                  ``haystack.component.type`` (a pipeline
                                       component's run): …Retriever,
                                       DocumentWriter → vector; …Generator,
                                       …Embedder → llm; ToolInvoker → tool;
                                       Agent → agent; other components (prompt
                                       builders, joiners, routers…) → none; an
                                       agent's run (``haystack.agent.max_steps``)
                                       → agent, its tool calls
                                       (``haystack.tool.name``) → tool, its model
                                       calls (``haystack.agent.step.llm.*``,
                                       content tracing on) → llm
``llm.request.type`` (OpenLLMetry)     chat, completion, embedding → llm
``gen_ai.request.model`` with          llm (GenAI spans written before
``gen_ai.system`` or                   ``gen_ai.operation.name``), when no
``gen_ai.provider.name``               operation name says otherwise
``messaging.system``, or on PRODUCER   operation (``messaging.operation.type`` or
and CONSUMER spans any ``messaging.*`` the older ``messaging.operation``) create,
attribute or ``celery.action``         send, publish → queue.publish; receive,
(Celery's instrumentation writes no    process, deliver → queue.consume; without
system)                                one, PRODUCER → queue.publish, CONSUMER →
                                       queue.consume, else from the call's name
                                       (``messaging.operation.name`` or
                                       ``rpc.method``: botocore's SendMessage,
                                       Publish → queue.publish, ReceiveMessage →
                                       queue.consume), else as any other call
                                       between services (below)
``db.system.name`` / ``db.system``     chroma, pinecone, qdrant, weaviate, milvus,
                                       pgvector, lancedb…, or any system with
                                       ``db.vector.*`` attributes or
                                       ``spring.ai.kind=vector_store`` → vector;
                                       redis, memcached, valkey… → cache; any
                                       other → db
SERVER / CLIENT kind + ``http.*``      http.server / http.client
SERVER / CLIENT kind + ``rpc.system``  http.server / http.client (gRPC, Connect,
or ``rpc.system.name``                 JSON-RPC, Dubbo…: a call between services,
                                       the same trust boundary as HTTP)
=====================================  ==========================================

OpenLIT writes ``invoke_workflow`` (its "framework" operation) both for a workflow run,
naming it (``gen_ai.workflow.name``: LangGraph's graph run, LangChain's outermost chain, the
OpenAI Agents SDK's trace) or its agent (``gen_ai.agent.name``), and for a framework's
in-process steps, which name neither (LlamaIndex's text splitting, node reading, index
building, ``gen_ai.operation.endpoint``; LangGraph's graph building and checkpoints;
Haystack's prompt builder; mem0's steps, ``gen_ai.framework.component.type``): a lost
tenant there is at no boundary (medium, naming the calls below that ran without it),
unless the step writes to a store.

``create_agent`` is a boundary only as a CLIENT call to a remote agent service (GenAI
semconv): frameworks also emit it in-process when an agent is built at start-up, with
no request and so no tenant, which is not a lost context. A vector store keeps its
database's name (Spring AI writes ``redis``, ``pg_vector``, ``mongodb``…), so its
vector attributes decide before the system does.

Embeddings map to ``llm``: an embeddings call sends the tenant's text to a model
provider, the same trust boundary as a chat call; so does the Vercel AI SDK's rerank,
which sends the query and the tenant's documents to a reranking model's provider. The
most specific convention wins (GenAI before database before HTTP), since e.g. an OpenAI
chat span is also a CLIENT span and a vector store span may also carry ``db.system``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .model import (
    SPAN_KIND_CLIENT,
    SPAN_KIND_CONSUMER,
    SPAN_KIND_PRODUCER,
    SPAN_KIND_SERVER,
)

__all__ = [
    "infer_boundary", "reads_messaging", "messaging_operation", "link_role", "CONSUMES", "CARRIES", "RECEIVES",
    "SETTLES", "is_json_text", "DECIDING_KEYS", "HTTP_KEYS", "URL_KEYS", "JSON_HEADS", "PROXY_KEY", "PROXY_VALUE",
    "holds_query_text", "has_quote", "SYSTEM_KEYS", "is_cache_system", "holds_key_text", "opens_a_connection", "waits_for_work",
    "ROUTING_KEYS", "PATH_KEYS", "ROUTE_KEY", "DESTINATION_KEYS", "NAMING_KEYS",
]

#: Envoy (Istio, Consul, edge proxies) sets this on every span it makes: a service-mesh
#: proxy's span, which the analysis passes through (flowmap.transparent)
PROXY_KEY, PROXY_VALUE = "component", "proxy"

_GEN_AI = {
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "invoke_workflow": "agent",
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "embeddings": "llm",
    "retrieval": "vector",
    # written by Semantic Kernel (text_completions: its text completion services, 1.x) and
    # Microsoft Agent Framework, and older instrumentations
    "text_completions": "llm",
    "chat.completions": "llm",
    "chat.streaming_completions": "llm",
    "text.completions": "llm",
    "text.streaming_completions": "llm",
    "completion": "llm",
    "embedding": "llm",
    # OpenLLMetry's own operation names (semconv-ai's GenAICustomOperationName)
    "vector_db_retrieve": "vector",
    "llm_request": "llm",
    # OpenLIT's: a memory store's calls (mem0's add, search, get, update, delete)
    "memory": "memory",
    "memory_add": "memory",
    "memory_search": "memory",
    "memory_get": "memory",
    "memory_update": "memory",
    "memory_delete": "memory",
}
# OpenLIT writes a framework's internal steps as invoke_workflow (its "framework" operation
# type): an agent's only when it names its workflow or agent (see the module's docstring);
# mem0's steps name their component, LlamaIndex's their endpoint: those that write a store
_WORKFLOW_NAME_KEYS = ("gen_ai.workflow.name", "gen_ai.agent.name")
# what names the agent an invoke_agent span runs (see _crewai_step)
_AGENT_KEYS = ("gen_ai.agent.name", "gen_ai.agent.id")
_FRAMEWORK_COMPONENT_KEY = "gen_ai.framework.component.type"
_FRAMEWORK_COMPONENTS = {
    "vector_store": "vector",
    "graph_store": "memory",
    "memory_creation": "memory",
    "procedural_memory": "memory",
}
_FRAMEWORK_ENDPOINT_KEY = "gen_ai.operation.endpoint"
_FRAMEWORK_ENDPOINTS = {"vector_store_add": "vector", "vector_store_delete": "vector"}
_FRAMEWORK_STEPS = ((_FRAMEWORK_COMPONENT_KEY, _FRAMEWORK_COMPONENTS), (_FRAMEWORK_ENDPOINT_KEY, _FRAMEWORK_ENDPOINTS))
_MCP = {"tools/call": "tool", "tools/list": "tool.catalog"}
# MCP requests that read the server's data for one request (a resource, a prompt): a call
# between services like an HTTP request; the session's own chatter (initialize,
# notifications, ping) is not a boundary: it runs once, at start-up, for no tenant
_MCP_READS = frozenset({"resources/read", "prompts/get"})
# the messaging operation of a span that names none, from the API call it made
# (botocore's SQS/SNS spans: rpc.method SendMessage, Publish, ReceiveMessage)
_PUBLISH_CALLS = ("send", "publish", "put")
_CONSUME_CALLS = ("receive",)
_OPENINFERENCE = {
    "TOOL": "tool",
    "AGENT": "agent",
    "LLM": "llm",
    "EMBEDDING": "llm",
    "RETRIEVER": "vector",
}
_TRACELOOP = {"tool": "tool", "agent": "agent"}
_VERCEL_PROVIDER_CALLS = (".doGenerate", ".doStream", ".doEmbed", ".doRerank")
# Mastra 0.x's telemetry (spans of the global tracer): the AI SDK's names under its own
# operation id (mastra.stream.toolCall, mastra.generate.aisdk.doStream), and one span a
# method of its traced classes, the method's arguments in <span name>.argument.<n>: an
# agent's run is one of these methods
_MASTRA_TOOL_CALL = "mastra.stream.toolCall"
_MASTRA_AGENT_RUNS = frozenset(
    f"agent.{method}.argument.0"
    for method in ("generate", "stream", "generateLegacy", "streamLegacy", "generateVNext", "streamVNext", "network")
)
# Genkit's own spans: an action's type (genkit:metadata:subtype); a flow is the app's code
_GENKIT_SUBTYPE = "genkit:metadata:subtype"
_GENKIT = {
    "tool": "tool", "model": "llm", "background-model": "llm", "embedder": "llm", "reranker": "llm",
    "retriever": "vector", "indexer": "vector", "agent": "agent",
}
# Haystack's own tracer: a component's class name (haystack.component.type) by its ending
# (InMemoryBM25Retriever, OpenAIChatGenerator, OpenAITextEmbedder...), and the spans of its
# Agent: the run, each tool call, each model call (written with content tracing only)
_HAYSTACK_COMPONENT_KEY = "haystack.component.type"
_HAYSTACK_COMPONENT_ENDS = (
    ("Retriever", "vector"), ("DocumentWriter", "vector"), ("Generator", "llm"), ("Embedder", "llm"),
    ("ToolInvoker", "tool"), ("Agent", "agent"),
)
_HAYSTACK_SPANS = (
    ("haystack.agent.max_steps", "agent"), ("haystack.tool.name", "tool"),
    ("haystack.agent.step.llm.input", "llm"), ("haystack.agent.step.llm.output", "llm"),
)
_HAYSTACK_KEYS = (_HAYSTACK_COMPONENT_KEY, *(key for key, _ in _HAYSTACK_SPANS))
_LLM_REQUEST_TYPE = {"chat": "llm", "completion": "llm", "embedding": "llm"}
_PUBLISH = frozenset({"publish", "create", "send"})
_CONSUME = frozenset({"receive", "process", "deliver"})
_CACHE_SYSTEMS = frozenset({"redis", "memcached", "valkey", "hazelcast", "geode", "coherence"})
_VECTOR_SYSTEMS = frozenset(
    {
        "chroma",
        "chromadb",
        "pinecone",
        "qdrant",
        "weaviate",
        "milvus",
        "pgvector",
        "lancedb",
        "marqo",
        "vespa",
        "faiss",
        "turbopuffer",
    }
)
# Attributes that only HTTP spans carry (stable and pre-1.20 names).
_HTTP_KEYS = (
    "http.request.method",
    "http.method",
    "http.route",
    "url.full",
    "url.path",
    "http.url",
    "http.target",
    "http.response.status_code",
    "http.status_code",
)
# A remote procedure call (gRPC and others) crosses services like an HTTP request does: a
# service that ignores the propagated context must be judged at a boundary either way.
# (``rpc.system`` before semantic conventions 1.38, ``rpc.system.name`` after.)
_REMOTE_CALL_KEYS = (*_HTTP_KEYS, "rpc.system.name", "rpc.system")

#: the attributes whose presence lets a convention decide (a span with none of them and
#: none of HTTP_KEYS has no inferred boundary: the loader then skips building a dict)
DECIDING_KEYS = frozenset(
    {
        "gen_ai.operation.name",
        "mcp.method.name",
        "openinference.span.kind",
        "traceloop.span.kind",
        "ai.operationId",
        "mastra.operationId",
        *_MASTRA_AGENT_RUNS,
        _GENKIT_SUBTYPE,
        "llm.request.type",
        *_HAYSTACK_KEYS,
        "gen_ai.request.model",
        "messaging.system",
        "db.system.name",
        "db.system",
    }
)
#: the attributes of a call between services (HTTP or RPC), read on SERVER/CLIENT spans
HTTP_KEYS = frozenset(_REMOTE_CALL_KEYS)
#: the attributes holding a URL's query (stable and pre-1.20 names): ``url.query`` alone,
#: the others after a ``?``; its parameters' names are names too (flowmap.masking)
URL_KEYS = frozenset({"url.query", "url.full", "http.url", "http.target"})
#: the ends of the names of attributes holding a query's or a filter's text (an SQL
#: statement, a vector store's filter expression): their quoted literals are values of the
#: names they are compared with, ``tenant_id = 'acme'`` (flowmap.masking)
_QUERY_TEXT_ENDS = ("statement", "query.text", "query.summary", "filter", "where", "expr")


#: the attributes holding a message's routing key (the older name, as OpenTelemetry JS's
#: amqplib instrumentation writes it, and the stable one): words joined by ``.`` that say
#: what a message is for, and may name its tenant, ``tenant.acme-7.order.created``
#: (flowmap.masking reads them)
ROUTING_KEYS = frozenset({"messaging.rabbitmq.routing_key", "messaging.rabbitmq.destination.routing_key"})
#: the attributes holding a URL's path (stable and pre-1.20 names; ``url.full`` and
#: ``http.url`` after the scheme and host, the others as they are, up to a ``?``): REST APIs
#: name the tenant in it, ``/tenants/acme-corp/orders`` (flowmap.masking reads the segments)
PATH_KEYS = frozenset({"url.path", "http.target", "url.full", "http.url"})
#: a server's route template: a parameter named after a tenant (``/tenants/{tenant_id}``)
#: says which segment of the path holds its value
ROUTE_KEY = "http.route"
#: the name of the queue or topic a message goes to or comes from, which a platform may
#: make per tenant (``orders.tenant-acme``): the stable name, and the one before semantic
#: conventions 1.17 that contrib's pika and aio-pika instrumentations still write;
#: ``messaging.destination.template`` is the template and is not read
DESTINATION_KEYS = frozenset({"messaging.destination.name", "messaging.destination"})
#: the attributes whose text may name a tenant in words and its id after (all of the above)
NAMING_KEYS = PATH_KEYS | DESTINATION_KEYS | {ROUTE_KEY}

#: the attributes naming a database's system (stable name first, as infer_boundary reads them)
SYSTEM_KEYS = ("db.system.name", "db.system")
_KEY_SEPARATORS = re.compile(r"[:/=|#]").search


def is_cache_system(system: Any) -> bool:
    """Whether a ``db.system`` value names a cache (redis, memcached…), whose command text
    is the command and its keys (flowmap.masking reads the keys for tenant names)."""
    return isinstance(system, str) and (system in _CACHE_SYSTEMS or system.lower() in _CACHE_SYSTEMS)


def holds_key_text(text: str) -> bool:
    """Whether a cache command's text holds a key with segments (``tenant:acme:cart``,
    ``cart/org_id=acme``): a separator a name and its value are written around. Contrib's
    redis instrumentation writes ``GET ?``, which has none (checked before anything reads it)."""
    return _KEY_SEPARATORS(text) is not None


# the last word of a span name that says the client is connecting: node-redis'
# ``redis-connect``, pg's ``pg.connect`` and ``pg-pool.connect``, ioredis' ``connect``
_CONNECTS = re.compile(r"(?:^|[-.:/_ ])connect$", re.IGNORECASE).search


def opens_a_connection(name: str, attributes: Mapping[str, Any]) -> bool:
    """Whether a database's or cache's client span is its connection set-up: named for
    connecting, with no query or command text but ``connect`` (ioredis writes that one).
    Clients connect at start-up and on reconnects, for no tenant (node-redis writes its
    ``redis-connect`` whether a request is active or not)."""
    if _CONNECTS(name) is None:
        return False
    return all(value == "connect" for key, value in attributes.items() if holds_query_text(key))


# Redis commands with which a worker waits for its queue's next message (blocking list
# and sorted-set pops, a consumer group's reads and claims, subscriptions) or
# acknowledges one (XACK: message ids only); XREAD only when it blocks (it also reads a
# stream as data)
_QUEUE_WAITS = frozenset({
    "BLPOP", "BRPOP", "BLMOVE", "BRPOPLPUSH", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP",
    "XREADGROUP", "XAUTOCLAIM", "XCLAIM", "XACK", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE",
})
_QUEUE_SYSTEMS = frozenset({"redis", "valkey"})
_OPERATION_KEYS = ("db.operation.name", "db.operation")
_BLOCKS = re.compile(r"\sBLOCK\s", re.IGNORECASE).search
_LAST_WORD = re.compile(r"[^-.:/_ ]+$").search


def waits_for_work(name: str, attributes: Mapping[str, Any]) -> bool:
    """Whether a Redis client span is a queue worker's own loop: a blocking pop, a
    consumer group's read, claim or acknowledgement, a subscription (``_QUEUE_WAITS``;
    an ``XREAD`` when its text shows ``BLOCK``). A worker waits for every tenant's
    messages at once, so such a call runs for no tenant; what a message carries is judged
    where the worker handles it. The command is the operation's name (stable
    conventions, flowmap's instrumentation), else the first word of the command text,
    else the span name's last word (contrib's ``BRPOP``, node-redis' ``redis-BRPOP``)."""
    system = next((attributes[k] for k in SYSTEM_KEYS if k in attributes), None)
    if not isinstance(system, str) or system.lower() not in _QUEUE_SYSTEMS:
        return False
    text = next((v for k, v in attributes.items() if holds_query_text(k) and isinstance(v, str)), "")
    command = next((attributes[k] for k in _OPERATION_KEYS if isinstance(attributes.get(k), str)), None)
    if command is None:
        words = text.split(None, 1)
        last = _LAST_WORD(name)
        command = words[0] if words else (last.group() if last else "")
    command = command.upper()
    return command in _QUEUE_WAITS or (command == "XREAD" and _BLOCKS(f" {text} ") is not None)


def has_quote(text: str) -> bool:
    """Whether ``text`` holds a quote a literal in query text is written between (text
    without one has no literal: checked before anything reads it)."""
    return "'" in text or '"' in text


@functools.lru_cache(maxsize=4096)
def holds_query_text(key: str) -> bool:
    """Whether attribute ``key`` holds a query's or a filter's text: ``db.statement``,
    ``db.query.text``, ``db.milvus.search.filter``, OpenLIT's ``db.filter``. Not
    conversation content (its prose and prompt templates quote ids as examples; the JSON in
    it is read for tenant keys anyway)."""
    return any([key == end or key.endswith("." + end) for end in _QUERY_TEXT_ENDS])


#: the first character of JSON text of an object or array, or a blank before it (a quick
#: test for a loop over many strings; :func:`is_json_text` says)
JSON_HEADS = frozenset("{[ \t\n\r")
_JSON_OPEN = ("{", "[")


def is_json_text(text: str) -> bool:
    """Whether a string looks like JSON text of an object or array (its first character
    but JSON's blanks is ``{`` or ``[``): attribute values often carry JSON (a request
    body, tool arguments, messages) whose keys are names too (flowmap.masking). Only such
    text is ever parsed. (Here, beside URL_KEYS, so that the loader need not import the
    masker.)"""
    head = text[:1]
    return head in JSON_HEADS and (head in _JSON_OPEN or text.lstrip(" \t\n\r")[:1] in _JSON_OPEN)


#: attributes holding a tool call's arguments, as instrumentations emit them: OTel GenAI,
#: OpenInference (``input.value``; not ``tool.parameters``, the tool's schema: a tenant
#: parameter the model left unfilled is no tenant the model chose),
#: Pydantic AI before its instrumentation version 3 (``tool_arguments``, its default
#: until then), OpenLLMetry (``traceloop.entity.input``: ``{"args": …, "kwargs": …}``),
#: Google ADK (``gcp.vertex.agent.tool_call_args``), the Vercel AI SDK
#: (``ai.toolCall.args``; ``ai.toolCall.input`` from version 5), OpenLIT's older name
#: (``gen_ai.tool.args``), Haystack's own tracer (``haystack.agent.step.tool.input``, content
#: tracing on), common ad-hoc names and flowmap's own. Flattened forms
#: ``<name>.<argument>`` count too.
TOOL_ARGUMENT_ATTRIBUTES: tuple[str, ...] = (
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.args",
    "input.value",
    "tool.arguments",
    "tool_arguments",
    "traceloop.entity.input",
    "gcp.vertex.agent.tool_call_args",
    "ai.toolCall.args",
    "ai.toolCall.input",
    "tool_call.function.arguments",
    "haystack.agent.step.tool.input",
    "stream.toolCall.args",
    "genkit:input",
    "flowmap.tool.arguments",
)

#: attributes holding what people and models said and what tools were given and returned:
#: prompts, messages, completions, tool arguments and results, retrieved documents
#: (OTel GenAI, OpenInference, OpenLLMetry, the Vercel AI SDK, Google ADK, Pydantic AI, MCP).
#: Flattened forms ``<name>.<part>`` count too. The risk map, a page made to be shared,
#: shows their size, not their text (flowmap report --show-content shows it).
#: Besides the semantic conventions' names, those the instrumentations of
#: tests/fixtures/third_party write: OpenLLMetry's LangChain/LangGraph task input and
#: output (``gen_ai.task.*``: the user's messages, the retrieved documents) and its MCP
#: responses (``mcp.response.value``: a tool's result), OpenInference's completions
#: (``llm.choices.<n>.completion.text``), Pydantic AI's messages and answer on its agent
#: run span (``pydantic_ai.all_messages``, ``final_result``; ``all_messages_events`` in
#: its instrumentation version 1), OpenInference's CrewAI names (the kickoff's inputs,
#: ``crew_inputs``/``flow_inputs``; the task descriptions they are formatted into,
#: ``crew_tasks``, ``formatted_description``/``formatted_expected_output``; the agents'
#: instructions, ``crew_agents``, ``agent.goal``/``agent.backstory``), OpenLLMetry's
#: (``crewai.crew.*``, ``crewai.task.*``, ``crewai.agent.*``: the same, and the crew's
#: result and task outputs) and OpenLIT's (``gen_ai.crewai.crew.agents``: their goals);
#: the Vercel AI SDK's embedding, reranking and reasoning (``ai.value``/``ai.values``: the text embedded,
#: ``ai.embedding``/``ai.embeddings``; ``ai.documents``: the documents reranked;
#: ``ai.response.reasoning``); OpenLIT's LangChain chain and agent runs' input and output
#: (``gen_ai.workflow.input``/``.output``: the messages); Haystack's own tracer, content
#: tracing on (a pipeline's, a component's, an agent's, its model and tool calls' input and
#: output: the question, the documents retrieved, the messages); Mastra's telemetry
#: (``stream.prompt.messages``, ``stream.response.*``, a tool call's ``stream.toolCall.*``,
#: and every traced method's ``<span>.argument.<n>`` and ``<span>.result``) and Genkit's
#: (an action's ``genkit:input`` and ``genkit:output``).
CONTENT_ATTRIBUTES: frozenset[str] = frozenset({
    *TOOL_ARGUMENT_ATTRIBUTES,
    "gen_ai.prompt", "gen_ai.completion", "gen_ai.input.messages", "gen_ai.output.messages",
    "gen_ai.system_instructions", "gen_ai.tool.call.result",
    "gen_ai.task.input", "gen_ai.task.output", "mcp.response.value",
    "output.value", "llm.input_messages", "llm.output_messages", "llm.prompts", "llm.choices",
    "llm.prompt_template.variables", "retrieval.documents", "embedding.embeddings",
    "traceloop.entity.output",
    "pydantic_ai.all_messages", "all_messages_events", "final_result",
    "ai.prompt", "ai.response.text", "ai.response.object", "ai.response.toolCalls",
    "ai.toolCall.result", "ai.toolCall.output", "ai.response.reasoning",
    "ai.value", "ai.values", "ai.embedding", "ai.embeddings", "ai.documents",
    "tool_response", "gcp.vertex.agent.tool_response", "gcp.vertex.agent.llm_request",
    "gcp.vertex.agent.llm_response", "tool.result",
    "crew_inputs", "flow_inputs", "crew_tasks", "crew_agents", "formatted_description",
    "formatted_expected_output", "agent.goal", "agent.backstory",
    "crewai.crew.agents", "crewai.crew.tasks", "crewai.crew.result", "crewai.crew.tasks_output",
    "crewai.task.description", "crewai.task.expected_output", "crewai.agent.goal", "crewai.agent.backstory",
    "gen_ai.crewai.crew.agents",
    "gen_ai.workflow.input", "gen_ai.workflow.output",
    "haystack.pipeline.input_data", "haystack.pipeline.output_data", "haystack.component.input",
    "haystack.component.output", "haystack.agent.input", "haystack.agent.output", "haystack.agent.step.llm.input",
    "haystack.agent.step.llm.output", "haystack.agent.step.tool.output",
    "stream.prompt.messages", "stream.response.text", "stream.response.toolCalls", "stream.response.reasoning",
    "stream.toolCall.result", "genkit:output",
})  # fmt: skip


#: the query text of a vector store's or a memory's call: OpenLIT writes the documents and
#: their metadata there (``db.query.summary`` of Chroma's upsert, ``db.query.text`` of
#: Milvus' insert: the rows) — content, where an SQL statement is the query's shape
STORE_CONTENT_ATTRIBUTES: frozenset[str] = frozenset({"db.query.text", "db.query.summary", "db.statement"})
_STORES = frozenset({"vector", "memory"})
#: Mastra's traced methods write each argument and the result under the span's name
#: (``agent.generate.argument.0``: the question; a workflow step's: the messages)
_METHOD_VALUE = re.compile(r"\.(?:argument\.[0-9]+|result)$").search


def holds_content(key: str, boundary: str | None = None) -> bool:
    """Whether attribute ``key`` holds conversation or tool content (CONTENT_ATTRIBUTES), or,
    on a span crossing ``boundary``, a store's documents (STORE_CONTENT_ATTRIBUTES)."""
    if key in CONTENT_ATTRIBUTES or (boundary in _STORES and key in STORE_CONTENT_ATTRIBUTES):
        return True
    if _METHOD_VALUE(key):
        return True
    head, dot, _ = key.partition(".")
    while dot:  # each dotted prefix: gen_ai.prompt.0.content -> gen_ai.prompt ...
        if head in CONTENT_ATTRIBUTES:
            return True
        nxt, dot, _ = key[len(head) + 1:].partition(".")
        head = f"{head}.{nxt}"
    return False


_REFUSED_STATUS = frozenset({401, 403, 407})
_STATUS_KEYS = ("http.response.status_code", "http.status_code")
#: gRPC's UNAUTHENTICATED (16) and PERMISSION_DENIED (7): its answers to HTTP's 401 and 403
_REFUSED_GRPC = frozenset({16, 7})
_REFUSED_RPC_NAMES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})
_GRPC_CODE = "rpc.grpc.status_code"  # numeric (semantic conventions before 1.38)
_RPC_CODE = "rpc.response.status_code"  # the code's name for gRPC (1.38 on); other systems' own codes
_CONNECT_CODE = "rpc.connect_rpc.error_code"  # Connect: "unauthenticated", "permission_denied"


def refused_request(attributes: Mapping[str, Any]) -> bool:
    """Whether an entry answered that the caller is unauthenticated or not allowed: HTTP
    401, 403 or 407, or gRPC's (and Connect's) UNAUTHENTICATED or PERMISSION_DENIED, a
    request's server span being judged as an HTTP one. Unauthenticated traffic turned
    away, authentication working, not a lost tenant (the analyzer's unscoped-entry and
    the runtime's alerts agree on this one test).

    The RPC codes are read even where an HTTP status is recorded too: gRPC answers every
    call with HTTP 200 and puts its own status in the trailers (.NET records both)."""
    for key in _STATUS_KEYS:
        code = attributes.get(key)
        if code is not None:
            if _number(code) in _REFUSED_STATUS:
                return True
            break
    code = attributes.get(_GRPC_CODE)
    if code is not None and _refused_rpc_code(code, numeric=True):
        return True
    code = attributes.get(_RPC_CODE)
    if code is not None:
        # a number is gRPC's code only in a gRPC span (JSON-RPC writes its own numbers here)
        system = attributes.get("rpc.system.name") or attributes.get("rpc.system")
        if _refused_rpc_code(code, numeric=isinstance(system, str) and system.lower() == "grpc"):
            return True
    code = attributes.get(_CONNECT_CODE)
    return code is not None and _refused_rpc_code(code, numeric=False)


def _number(value: Any) -> int | None:
    """A status code as an integer (from an int, float or numeric string), else None."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _refused_rpc_code(value: Any, numeric: bool) -> bool:
    """An RPC status that refused the caller: by name in any case, or (``numeric``) as
    gRPC's number."""
    if isinstance(value, str) and value.strip().upper() in _REFUSED_RPC_NAMES:
        return True
    return numeric and not isinstance(value, bool) and _number(value) in _REFUSED_GRPC


def reads_messaging(keys: Iterable[str]) -> bool:
    """Whether attribute names say a span is about a message: a ``messaging.*`` name
    (the system, or only an id or destination) or Celery's ``celery.action``."""
    return any(key.startswith("messaging.") or key == "celery.action" for key in keys)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def messaging_operation(attributes: Mapping[str, Any]) -> str | None:
    """A messaging span's operation type, lowercase: ``messaging.operation.type``
    (semconv 1.26 and later), else the older ``messaging.operation``."""
    get = attributes.get
    mop = _text(get("messaging.operation.type")) or _text(get("messaging.operation"))
    return mop.lower() if mop is not None else None


# What a span's links point at (see link_role)
CONSUMES = "consumes"
CARRIES = "carries"
RECEIVES = "receives"
SETTLES = "settles"


def link_role(kind: int, attributes: Mapping[str, Any]) -> str:
    """What the spans a span links to are to it, by OpenTelemetry's messaging conventions.

    - ``CARRIES``: a producer-side span — ``create``, ``send`` (``publish`` before semconv
      1.27, and the older ``messaging.operation``), or any PRODUCER span about a message.
      A batch send links to each message's creation context (its ``create`` span): the
      links point at the messages it carries, each of which keeps its own context (and
      tenant) on to its consumers, which link to that context too.
    - ``RECEIVES``: a pull consumer's ``receive``: it links to each message's creation
      context and hands the messages to the code that called it, which processes them
      (semconv 1.27 makes it a CLIENT span; a ``process`` span may follow for each).
    - ``SETTLES``: a ``settle`` (acknowledgement) MAY link to the messages it settles;
      it carries none of their data.
    - ``CONSUMES``: anything else (``process``, ``deliver``, a Celery task's run, a cache
      read linking to the span that filled the entry): it acts on what it links to.
    """
    mop = messaging_operation(attributes)
    if mop in _PUBLISH or (kind == SPAN_KIND_PRODUCER and (mop is not None or reads_messaging(attributes))):
        return CARRIES
    if mop == "receive":
        return RECEIVES
    if mop == "settle":
        return SETTLES
    return CONSUMES


def _vector_store(attributes: Mapping[str, Any]) -> bool:
    """A database span that is a vector search: ``db.vector.*`` attributes (Spring AI,
    OpenLLMetry) or Spring AI's own ``spring.ai.kind``."""
    if attributes.get("spring.ai.kind") == "vector_store":
        return True
    return any(key.startswith("db.vector.") for key in attributes)


def _workflow(attributes: Mapping[str, Any]) -> str | None:
    """The boundary of an ``invoke_workflow`` span: the store a framework's step writes
    (OpenLIT's component or endpoint), an agent's run when it names its workflow or agent,
    else none (a framework's in-process step: splitting text, building an index)."""
    for key, known in _FRAMEWORK_STEPS:
        step = _text(attributes.get(key))
        if step is not None:
            return known.get(step.lower())
    if any([_text(attributes.get(key)) for key in _WORKFLOW_NAME_KEYS]):
        return "agent"
    return None


def _haystack(attributes: Mapping[str, Any]) -> str | None:
    """The boundary of a span of Haystack's own tracer: its component's, by the class name
    (a prompt builder, a joiner, a router: none), or its agent's run, tool or model call."""
    component = _text(attributes.get(_HAYSTACK_COMPONENT_KEY))
    if component is not None:
        return next((found for end, found in _HAYSTACK_COMPONENT_ENDS if component.endswith(end)), None)
    return next((found for key, found in _HAYSTACK_SPANS if key in attributes), None)


def _crewai_step(attributes: Mapping[str, Any]) -> bool:
    """Whether an ``invoke_agent`` span is CrewAI's but names no agent: a step of a Flow
    (OpenLIT's ``Flow._execute_method``: CrewAI 1.x runs each agent as a Flow of its own,
    ``check_max_iterations``, ``call_llm_native_tools``…), or OpenLLMetry's crew kickoff
    (``crewai.workflow``) and task run around the agent's run (which names its agent)."""
    return attributes.get("gen_ai.provider.name") == "crewai" and not any(
        [_text(attributes.get(key)) for key in _AGENT_KEYS])


def infer_boundary(kind: int, attributes: Mapping[str, Any]) -> str | None:
    """The boundary kind a span crosses according to standard conventions, or None."""
    get = attributes.get
    op = _text(get("gen_ai.operation.name"))
    if op is not None:
        op = op.lower()
        if op == "invoke_agent" and _crewai_step(attributes):
            return None  # an in-process step: its calls below are judged, not the step
        found = _workflow(attributes) if op == "invoke_workflow" else _GEN_AI.get(op)
        if found and (op != "create_agent" or kind == SPAN_KIND_CLIENT):
            return found
    mcp = _text(get("mcp.method.name"))
    if mcp is not None:
        if mcp in _MCP:
            return _MCP[mcp]
        if mcp in _MCP_READS and (kind == SPAN_KIND_SERVER or kind == SPAN_KIND_CLIENT):
            return "http.server" if kind == SPAN_KIND_SERVER else "http.client"
    oi = _text(get("openinference.span.kind"))
    if oi is not None:
        return _OPENINFERENCE.get(oi.upper())  # CHAIN, RERANKER, ...: deliberately None
    tl = _text(get("traceloop.span.kind"))
    if tl is not None and tl.lower() in _TRACELOOP:
        return _TRACELOOP[tl.lower()]
    vercel = _text(get("ai.operationId"))
    if vercel is not None:
        if vercel == "ai.toolCall":
            return "tool"
        if vercel.endswith(_VERCEL_PROVIDER_CALLS):
            return "llm"
    mastra = _text(get("mastra.operationId"))
    if mastra is not None:
        if mastra == _MASTRA_TOOL_CALL:
            return "tool"
        return "llm" if mastra.endswith(_VERCEL_PROVIDER_CALLS) else None
    genkit = _text(get(_GENKIT_SUBTYPE))
    if genkit is not None:
        return _GENKIT.get(genkit)
    if not _MASTRA_AGENT_RUNS.isdisjoint(attributes):
        return "agent"
    if any([key in attributes for key in _HAYSTACK_KEYS]):
        return _haystack(attributes)
    rt = _text(get("llm.request.type"))
    if rt is not None and rt.lower() in _LLM_REQUEST_TYPE:
        return _LLM_REQUEST_TYPE[rt.lower()]
    if op is None and get("gen_ai.request.model") is not None and (
        get("gen_ai.system") is not None or get("gen_ai.provider.name") is not None
    ):
        return "llm"  # GenAI spans written before gen_ai.operation.name (semconv < 1.27)
    if get("messaging.system") is not None or (
        (kind == SPAN_KIND_PRODUCER or kind == SPAN_KIND_CONSUMER) and reads_messaging(attributes)
    ):
        # The span kind decides where it is PRODUCER or CONSUMER: contrib's confluent-kafka
        # instrumentation writes messaging.operation=receive on its PRODUCER send span.
        if kind == SPAN_KIND_PRODUCER:
            return "queue.publish"
        if kind == SPAN_KIND_CONSUMER:
            return "queue.consume"
        mop = messaging_operation(attributes)
        if mop is not None:
            if mop in _PUBLISH:
                return "queue.publish"
            if mop in _CONSUME:
                return "queue.consume"
        if mop is not None:
            return None  # e.g. "settle": an acknowledgement carries no message data
        call = (_text(get("messaging.operation.name")) or _text(get("rpc.method")) or "").lower()
        if call.startswith(_PUBLISH_CALLS):
            return "queue.publish"
        if call.startswith(_CONSUME_CALLS):
            return "queue.consume"
        # a messaging client's other calls (delete, create a queue): a call between
        # services if it has the attributes of one, below
    system = _text(get("db.system.name")) or _text(get("db.system"))
    if system is not None:
        system = system.lower()
        if system.replace("_", "").replace("-", "") in _VECTOR_SYSTEMS or _vector_store(attributes):
            return "vector"
        if is_cache_system(system):
            return "cache"
        return "db"
    if kind == SPAN_KIND_SERVER or kind == SPAN_KIND_CLIENT:
        for key in _REMOTE_CALL_KEYS:
            if key in attributes:
                return "http.server" if kind == SPAN_KIND_SERVER else "http.client"
    return None
