"""Boundary inference on attribute sets that real instrumentations emit."""

from __future__ import annotations

import pytest

from flowmap.attributes import BOUNDARY_KINDS
from flowmap.conventions import infer_boundary
from flowmap.model import (
    SPAN_KIND_CLIENT,
    SPAN_KIND_CONSUMER,
    SPAN_KIND_INTERNAL,
    SPAN_KIND_PRODUCER,
    SPAN_KIND_SERVER,
)

CASES = [
    # OpenTelemetry HTTP semantic conventions (stable) and the pre-1.20 names
    ("asgi server, stable", SPAN_KIND_SERVER,
     {"http.request.method": "POST", "url.path": "/chat", "url.scheme": "http", "http.route": "/chat",
      "http.response.status_code": 200, "server.address": "127.0.0.1"}, "http.server"),
    ("flask server, old names", SPAN_KIND_SERVER,
     {"http.method": "GET", "http.target": "/a", "http.scheme": "http", "http.status_code": 200}, "http.server"),
    ("httpx client", SPAN_KIND_CLIENT,
     {"http.request.method": "POST", "url.full": "http://tools.svc/run", "server.address": "tools.svc"}, "http.client"),
    ("requests client, old names", SPAN_KIND_CLIENT, {"http.method": "GET", "http.url": "http://x.internal/"}, "http.client"),
    ("internal span with an http attribute", SPAN_KIND_INTERNAL, {"http.method": "GET"}, None),
    # RPC between services (opentelemetry-instrumentation-grpc; semconv 1.38+ renames the system)
    ("grpc server", SPAN_KIND_SERVER, {"rpc.system": "grpc", "rpc.service": "Tools", "rpc.method": "Run"}, "http.server"),
    ("grpc client, rpc.system.name", SPAN_KIND_CLIENT,
     {"rpc.system.name": "grpc", "rpc.method": "agent.Tools/Run", "server.address": "tools.svc"}, "http.client"),
    ("connect rpc server", SPAN_KIND_SERVER, {"rpc.system.name": "connect_rpc", "rpc.method": "Tools/Run"}, "http.server"),
    ("rpc attribute on an internal span", SPAN_KIND_INTERNAL, {"rpc.system": "grpc"}, None),
    # GenAI semantic conventions
    ("openai chat (opentelemetry-instrumentation-openai-v2)", SPAN_KIND_CLIENT,
     {"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
      "server.address": "api.openai.com", "http.request.method": "POST"}, "llm"),
    ("semantic kernel chat", SPAN_KIND_CLIENT,
     {"gen_ai.operation.name": "chat.streaming_completions", "gen_ai.system": "openai"}, "llm"),
    ("text completion", SPAN_KIND_CLIENT, {"gen_ai.operation.name": "text_completion"}, "llm"),
    # Semantic Kernel 1.x's text completion services (an INTERNAL span; its name is plural)
    ("semantic kernel text completion", SPAN_KIND_INTERNAL,
     {"gen_ai.operation.name": "text_completions", "gen_ai.system": "openai", "gen_ai.request.model": "m"}, "llm"),
    # botocore 0.66b2's SQS spans: a messaging system, no operation, an AWS API call
    ("sqs send (botocore)", SPAN_KIND_CLIENT,
     {"rpc.system": "aws-api", "rpc.service": "SQS", "rpc.method": "SendMessage", "messaging.system": "aws.sqs",
      "messaging.destination": "jobs", "http.status_code": 200}, "queue.publish"),
    ("sqs receive (botocore)", SPAN_KIND_CLIENT,
     {"rpc.system": "aws-api", "rpc.service": "SQS", "rpc.method": "ReceiveMessage", "messaging.system": "aws.sqs"},
     "queue.consume"),
    ("sqs delete queue: a call between services", SPAN_KIND_CLIENT,
     {"rpc.system": "aws-api", "rpc.method": "DeleteQueue", "messaging.system": "aws.sqs"}, "http.client"),
    ("messaging settle names its operation: no boundary", SPAN_KIND_CLIENT,
     {"messaging.system": "kafka", "messaging.operation.type": "settle", "rpc.method": "SendAck"}, None),
    ("openllmetry langchain retriever", SPAN_KIND_CLIENT,
     {"gen_ai.operation.name": "vector_db_retrieve", "traceloop.span.kind": "task", "gen_ai.provider.name": "langchain"},
     "vector"),
    ("mcp resources/read, client", SPAN_KIND_CLIENT, {"mcp.method.name": "resources/read", "jsonrpc.request.id": "3"},
     "http.client"),
    ("mcp prompts/get, server", SPAN_KIND_SERVER, {"mcp.method.name": "prompts/get"}, "http.server"),
    ("mcp initialize is no boundary", SPAN_KIND_CLIENT, {"mcp.method.name": "initialize"}, None),
    ("genai chat before gen_ai.operation.name (semconv < 1.27)", SPAN_KIND_CLIENT,
     {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4", "server.address": "api.openai.com"}, "llm"),
    ("genai provider name and model, no operation", SPAN_KIND_CLIENT,
     {"gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude"}, "llm"),
    ("genai system without a model is no call", SPAN_KIND_INTERNAL, {"gen_ai.system": "openai"}, None),
    ("genai operation name decides over the model", SPAN_KIND_INTERNAL,
     {"gen_ai.operation.name": "execute_tool", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4"}, "tool"),
    ("an unknown genai operation is not taken for a model call", SPAN_KIND_INTERNAL,
     {"gen_ai.operation.name": "create_thread", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4"}, None),
    ("gemini generate_content", SPAN_KIND_CLIENT, {"gen_ai.operation.name": "generate_content"}, "llm"),
    ("embeddings", SPAN_KIND_CLIENT, {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "text-embedding-3-small"}, "llm"),
    ("execute_tool", SPAN_KIND_INTERNAL,
     {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather", "gen_ai.tool.call.id": "call_1"}, "tool"),
    ("invoke_agent", SPAN_KIND_INTERNAL, {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Math Tutor"}, "agent"),
    ("create_agent", SPAN_KIND_CLIENT, {"gen_ai.operation.name": "create_agent"}, "agent"),
    # an agent built in-process at start-up (OpenLLMetry's langgraph span): no boundary
    ("create_agent in process", SPAN_KIND_INTERNAL,
     {"gen_ai.operation.name": "create_agent", "gen_ai.agent.name": "react_agent"}, None),
    ("retrieval", SPAN_KIND_CLIENT, {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "H7STPQYOND"}, "vector"),
    ("unknown gen_ai op falls through to http", SPAN_KIND_CLIENT,
     {"gen_ai.operation.name": "something_new", "http.request.method": "POST"}, "http.client"),
    # Model Context Protocol (GenAI semconv): tools/call spans also say execute_tool, when set
    ("mcp client tools/call", SPAN_KIND_CLIENT,
     {"mcp.method.name": "tools/call", "gen_ai.tool.name": "get-weather", "gen_ai.operation.name": "execute_tool",
      "jsonrpc.request.id": "7", "network.transport": "pipe"}, "tool"),
    ("mcp server tools/call without gen_ai", SPAN_KIND_SERVER,
     {"mcp.method.name": "tools/call", "gen_ai.tool.name": "get-weather", "mcp.session.id": "s1"}, "tool"),
    ("mcp tools/list", SPAN_KIND_CLIENT, {"mcp.method.name": "tools/list", "jsonrpc.request.id": "2"}, "tool.catalog"),
    ("mcp initialize", SPAN_KIND_CLIENT, {"mcp.method.name": "initialize", "mcp.protocol.version": "2025-06-18"}, None),
    # OpenInference
    ("openinference tool", SPAN_KIND_INTERNAL, {"openinference.span.kind": "TOOL", "tool.name": "search"}, "tool"),
    ("openinference agent", SPAN_KIND_INTERNAL, {"openinference.span.kind": "AGENT"}, "agent"),
    ("openinference llm", SPAN_KIND_INTERNAL,
     {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.provider": "openai"}, "llm"),
    ("openinference embedding", SPAN_KIND_INTERNAL, {"openinference.span.kind": "EMBEDDING"}, "llm"),
    ("openinference retriever", SPAN_KIND_INTERNAL, {"openinference.span.kind": "RETRIEVER"}, "vector"),
    ("openinference chain", SPAN_KIND_INTERNAL, {"openinference.span.kind": "CHAIN", "input.value": "hi"}, None),
    ("openinference reranker", SPAN_KIND_INTERNAL, {"openinference.span.kind": "RERANKER"}, None),
    # OpenLLMetry
    ("traceloop tool", SPAN_KIND_INTERNAL, {"traceloop.span.kind": "tool", "traceloop.entity.name": "lookup"}, "tool"),
    ("traceloop workflow", SPAN_KIND_INTERNAL, {"traceloop.span.kind": "workflow"}, None),
    ("openllmetry chat (llm.request.type)", SPAN_KIND_CLIENT, {"llm.request.type": "chat", "gen_ai.system": "OpenAI"}, "llm"),
    # Vercel AI SDK (TypeScript) before it wrote gen_ai.*: ai.operationId
    ("vercel ai tool call", SPAN_KIND_INTERNAL,
     {"ai.operationId": "ai.toolCall", "operation.name": "ai.toolCall", "ai.toolCall.name": "weather",
      "ai.toolCall.args": "{\"city\": \"Paris\"}"}, "tool"),
    ("vercel ai doGenerate", SPAN_KIND_INTERNAL,
     {"ai.operationId": "ai.generateText.doGenerate", "ai.model.provider": "openai.chat"}, "llm"),
    ("vercel ai embedMany doEmbed", SPAN_KIND_INTERNAL, {"ai.operationId": "ai.embedMany.doEmbed"}, "llm"),
    ("vercel ai outer streamText", SPAN_KIND_INTERNAL, {"ai.operationId": "ai.streamText"}, None),
    # its rerank sends the query and the documents to the reranking model's provider
    ("vercel ai doRerank", SPAN_KIND_INTERNAL,
     {"ai.operationId": "ai.rerank.doRerank", "ai.model.provider": "cohere.reranking"}, "llm"),
    ("vercel ai outer rerank", SPAN_KIND_INTERNAL, {"ai.operationId": "ai.rerank"}, None),
    # Mastra's telemetry (0.x): the AI SDK's names under its own operation id, and its
    # traced methods (an agent's run, its arguments in <span>.argument.<n>)
    ("mastra tool call", SPAN_KIND_INTERNAL,
     {"mastra.operationId": "mastra.stream.toolCall", "stream.toolCall.args": '{"city": "Paris"}'}, "tool"),
    ("mastra provider call", SPAN_KIND_INTERNAL, {"mastra.operationId": "mastra.generate.aisdk.doStream"}, "llm"),
    ("mastra outer stream", SPAN_KIND_INTERNAL, {"mastra.operationId": "mastra.stream"}, None),
    ("mastra agent run", SPAN_KIND_INTERNAL, {"agent.generate.argument.0": '"hi"', "componentName": "a"}, "agent"),
    ("mastra agent's other method", SPAN_KIND_INTERNAL, {"agent.convertTools.argument.0": "{}"}, None),
    # Genkit's own spans: the action's type
    ("genkit tool", SPAN_KIND_INTERNAL, {"genkit:type": "action", "genkit:metadata:subtype": "tool"}, "tool"),
    ("genkit model", SPAN_KIND_INTERNAL, {"genkit:type": "action", "genkit:metadata:subtype": "model"}, "llm"),
    ("genkit embedder", SPAN_KIND_INTERNAL, {"genkit:metadata:subtype": "embedder"}, "llm"),
    ("genkit retriever", SPAN_KIND_INTERNAL, {"genkit:metadata:subtype": "retriever"}, "vector"),
    ("genkit flow", SPAN_KIND_INTERNAL, {"genkit:type": "action", "genkit:metadata:subtype": "flow"}, None),
    ("genkit generate util", SPAN_KIND_INTERNAL, {"genkit:type": "util", "genkit:name": "generate"}, None),
    # Databases
    ("redis-py", SPAN_KIND_CLIENT, {"db.system": "redis", "db.statement": "GET ?", "net.peer.name": "localhost"}, "cache"),
    ("memcached", SPAN_KIND_CLIENT, {"db.system": "memcached"}, "cache"),
    ("postgres, stable names", SPAN_KIND_CLIENT, {"db.system.name": "postgresql", "db.query.text": "SELECT 1"}, "db"),
    ("mongodb", SPAN_KIND_CLIENT, {"db.system": "mongodb", "db.operation": "find"}, "db"),
    ("openllmetry chroma", SPAN_KIND_CLIENT, {"db.system": "chroma", "db.operation": "query"}, "vector"),
    ("openllmetry qdrant", SPAN_KIND_CLIENT, {"db.system": "qdrant"}, "vector"),
    ("pinecone", SPAN_KIND_CLIENT, {"db.system": "Pinecone"}, "vector"),
    # Spring AI vector stores keep their database's name
    ("spring ai pgvector", SPAN_KIND_CLIENT,
     {"db.system": "pg_vector", "db.operation.name": "query", "db.vector.query.top_k": 4,
      "spring.ai.kind": "vector_store"}, "vector"),
    ("spring ai redis vector store", SPAN_KIND_CLIENT,
     {"db.system": "redis", "db.operation.name": "add", "spring.ai.kind": "vector_store"}, "vector"),
    ("mongodb atlas vector search", SPAN_KIND_CLIENT,
     {"db.system.name": "mongodb", "db.vector.dimension_count": 1536}, "vector"),
    # OpenLIT: its vector stores (operation vectordb) by their system; mem0's calls are a
    # memory's, its internal steps (invoke_workflow) the stores they read and write
    ("openlit astra", SPAN_KIND_CLIENT,
     {"gen_ai.operation.name": "vectordb", "db.system.name": "astra", "db.operation.name": "QUERY"}, "db"),
    ("openlit chroma", SPAN_KIND_CLIENT,
     {"gen_ai.operation.name": "vectordb", "db.system.name": "chroma", "db.operation.name": "GET"}, "vector"),
    ("openlit mem0 search", SPAN_KIND_CLIENT,
     {"gen_ai.operation.name": "memory", "gen_ai.provider.name": "mem0", "gen_ai.endpoint": "memory search"}, "memory"),
    ("openlit memory_add", SPAN_KIND_CLIENT, {"gen_ai.operation.name": "memory_add"}, "memory"),
    ("openlit mem0 vector store step", SPAN_KIND_INTERNAL,
     {"gen_ai.operation.name": "invoke_workflow", "gen_ai.provider.name": "mem0",
      "gen_ai.framework.component.type": "vector_store"}, "vector"),
    ("openlit mem0 memory creation", SPAN_KIND_INTERNAL,
     {"gen_ai.operation.name": "invoke_workflow", "gen_ai.framework.component.type": "memory_creation"}, "memory"),
    ("openlit mem0 graph store", SPAN_KIND_INTERNAL,
     {"gen_ai.operation.name": "invoke_workflow", "gen_ai.framework.component.type": "graph_store"}, "memory"),
    # OpenLIT's invoke_workflow: a workflow's run when it names its workflow or agent, else
    # a framework's in-process step (LlamaIndex's endpoints, Haystack's and mem0's
    # components) that no data leaves the process through, but a write to a store
    ("invoke_workflow of another component", SPAN_KIND_INTERNAL,
     {"gen_ai.operation.name": "invoke_workflow", "gen_ai.framework.component.type": "prompt_builder"}, None),
    ("openlit langgraph graph run", SPAN_KIND_INTERNAL,
     {"gen_ai.operation.name": "invoke_workflow", "gen_ai.provider.name": "langgraph",
      "gen_ai.workflow.name": "weather_agent"}, "agent"),
    ("invoke_workflow naming its agent", SPAN_KIND_INTERNAL,
     {"gen_ai.operation.name": "invoke_workflow", "gen_ai.agent.name": "planner"}, "agent"),
    ("openlit llama-index text splitting", SPAN_KIND_CLIENT,
     {"gen_ai.operation.name": "invoke_workflow", "gen_ai.provider.name": "llama_index",
      "gen_ai.operation.endpoint": "document_split", "server.address": "localhost"}, None),
    ("openlit llama-index vector store write", SPAN_KIND_CLIENT,
     {"gen_ai.operation.name": "invoke_workflow", "gen_ai.operation.endpoint": "vector_store_add"}, "vector"),
    ("openlit langgraph graph building", SPAN_KIND_CLIENT,
     {"gen_ai.operation.name": "invoke_workflow", "gen_ai.provider.name": "langgraph"}, None),
    # CrewAI: an invoke_agent naming no agent is a step around or inside an agent's run
    # (OpenLIT's Flow steps, OpenLLMetry's kickoff and task run); one naming it, the run
    ("openlit crewai flow step", SPAN_KIND_INTERNAL,
     {"gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": "crewai"}, None),
    ("openlit crewai agent run", SPAN_KIND_INTERNAL,
     {"gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": "crewai",
      "gen_ai.agent.name": "weather assistant"}, "agent"),
    ("openllmetry crewai task run", SPAN_KIND_INTERNAL,
     {"gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": "crewai", "traceloop.span.kind": "task"}, None),
    ("another framework's unnamed agent run", SPAN_KIND_INTERNAL,
     {"gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": "openai"}, "agent"),
    # Messaging
    ("kafka send", SPAN_KIND_PRODUCER,
     {"messaging.system": "kafka", "messaging.destination.name": "jobs", "messaging.operation.type": "send"}, "queue.publish"),
    ("kafka process", SPAN_KIND_CONSUMER,
     {"messaging.system": "kafka", "messaging.operation.type": "process"}, "queue.consume"),
    # the span kind decides: contrib's confluent-kafka writes operation "receive" on its send
    ("confluent-kafka send", SPAN_KIND_PRODUCER,
     {"messaging.system": "kafka", "messaging.operation": "receive", "messaging.destination": "jobs"}, "queue.publish"),
    ("rabbitmq old publish", SPAN_KIND_PRODUCER, {"messaging.system": "rabbitmq", "messaging.operation": "publish"}, "queue.publish"),
    ("receive as a client span", SPAN_KIND_CLIENT, {"messaging.system": "rabbitmq", "messaging.operation.type": "receive"}, "queue.consume"),
    ("producer without operation", SPAN_KIND_PRODUCER, {"messaging.system": "celery"}, "queue.publish"),
    ("consumer without operation", SPAN_KIND_CONSUMER, {"messaging.system": "celery"}, "queue.consume"),
    # Celery's instrumentation: apply_async/<task> and run/<task>, with no messaging.system
    ("celery apply_async", SPAN_KIND_PRODUCER,
     {"celery.action": "apply_async", "messaging.message.id": "5d1c", "celery.task_name": "t"}, "queue.publish"),
    ("celery run", SPAN_KIND_CONSUMER, {"celery.action": "run", "celery.task_name": "t"}, "queue.consume"),
    ("messaging id alone", SPAN_KIND_CONSUMER, {"messaging.message.id": "42"}, "queue.consume"),
    ("message id on an internal span", SPAN_KIND_INTERNAL, {"messaging.message.id": "42"}, None),
    # a stray messaging.* key on another kind of span changes nothing
    ("http server with a message id", SPAN_KIND_SERVER,
     {"http.request.method": "POST", "messaging.message.id": "42"}, "http.server"),
    ("redis client with a message id", SPAN_KIND_CLIENT, {"db.system": "redis", "messaging.message.id": "42"}, "cache"),
    ("postgres with a celery action", SPAN_KIND_CLIENT, {"db.system": "postgresql", "celery.action": "run"}, "db"),
    ("settle", SPAN_KIND_CLIENT, {"messaging.system": "servicebus", "messaging.operation.type": "settle"}, None),
    # Haystack's own tracer (content tracing off: only the component's class and the agent's
    # own attributes): a component by its class, the agent's run and its tool calls
    ("haystack retriever", SPAN_KIND_INTERNAL,
     {"haystack.component.name": "retriever", "haystack.component.type": "QdrantEmbeddingRetriever"}, "vector"),
    ("haystack chat generator", SPAN_KIND_INTERNAL, {"haystack.component.type": "OpenAIChatGenerator"}, "llm"),
    ("haystack embedder", SPAN_KIND_INTERNAL, {"haystack.component.type": "OpenAITextEmbedder"}, "llm"),
    ("haystack document writer", SPAN_KIND_INTERNAL, {"haystack.component.type": "DocumentWriter"}, "vector"),
    ("haystack tool invoker", SPAN_KIND_INTERNAL, {"haystack.component.type": "ToolInvoker"}, "tool"),
    ("haystack agent component", SPAN_KIND_INTERNAL, {"haystack.component.type": "Agent"}, "agent"),
    ("haystack prompt builder", SPAN_KIND_INTERNAL, {"haystack.component.type": "ChatPromptBuilder"}, None),
    ("haystack router", SPAN_KIND_INTERNAL, {"haystack.component.type": "ConditionalRouter"}, None),
    ("haystack agent run", SPAN_KIND_INTERNAL, {"haystack.agent.max_steps": 100, "haystack.agent.tools": "[]"}, "agent"),
    ("haystack agent tool call", SPAN_KIND_INTERNAL,
     {"haystack.tool.name": "get_weather", "haystack.tool.description": "d"}, "tool"),
    ("haystack agent model call", SPAN_KIND_INTERNAL, {"haystack.agent.step.llm.input": "{}"}, "llm"),
    ("haystack agent step", SPAN_KIND_INTERNAL, {"haystack.agent.step": 0}, None),
    # Nothing to go on
    ("plain internal", SPAN_KIND_INTERNAL, {"code.function": "f"}, None),
    ("wrong types", SPAN_KIND_SERVER, {"gen_ai.operation.name": 3, "db.system": ["redis"]}, None),
]


@pytest.mark.parametrize(("kind", "attributes", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_infer_boundary(kind, attributes, expected):
    assert infer_boundary(kind, attributes) == expected


def test_every_inferred_kind_is_a_contract_boundary():
    inferred = {c[3] for c in CASES} - {None}
    assert inferred <= BOUNDARY_KINDS


def test_a_celery_worker_that_drops_the_tenant_is_high_through_the_loader(tmp_path):
    # Celery's instrumentation writes celery.* and messaging.message.id, no messaging.system:
    # the worker's run/<task> span is still a queue.consume boundary, so a lost tenant fails CI
    from otlp_builder import PRODUCER, CONSUMER, SERVER, TAG_A, TraceBuilder, analyze_built

    tb = TraceBuilder(service="web")
    publish = tb.span("POST /summaries", kind=SERVER, tenant=TAG_A, boundary="http.server").child(
        "apply_async/tasks.summarize", kind=PRODUCER, tenant=TAG_A,
        attrs={"celery.action": "apply_async", "messaging.message.id": "5d1c", "celery.task_name": "tasks.summarize"})
    run = publish.child("run/tasks.summarize", kind=CONSUMER, service="worker",
                        attrs={"celery.action": "run", "messaging.message.id": "5d1c"})
    a = analyze_built(tmp_path, tb)
    (f,) = a.findings
    assert (f.rule, f.severity.name, f.boundary, f.span_id) == ("context-dropped", "HIGH", "queue.consume", run.span_id)
    assert a.flow.nodes["web apply_async/tasks.summarize"].boundary == "queue.publish"


@pytest.mark.parametrize(
    "key, content",
    [
        ("gen_ai.input.messages", True),
        ("gen_ai.prompt.0.content", True),  # OpenLLMetry, flattened
        ("llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments", True),  # OpenInference
        ("retrieval.documents.0.document.content", True),
        ("pydantic_ai.all_messages", True),
        ("final_result", True),
        ("mcp.response.value", True),
        ("tool.arguments.customer_id", True),
        ("crew_inputs", True),  # OpenInference CrewAI: the kickoff's inputs
        ("crew_tasks", True),  # the task descriptions, formatted with those inputs
        ("agent.backstory", True),
        # the Vercel AI SDK: the text embedded, its vectors, reranked documents, reasoning
        ("ai.value", True),
        ("ai.values", True),
        ("ai.embedding", True),
        ("ai.embeddings", True),
        ("ai.documents", True),
        ("ai.ranking", False),  # the documents' indices and scores
        ("ai.response.reasoning", True),
        ("ai.response.model", False),
        ("ai.usage.tokens", False),
        ("crew_id", False),
        # OpenLIT: the tool calls' arguments a model asked for (its older name), LangChain's
        # chain and agent runs' messages
        ("gen_ai.tool.args", True),
        ("gen_ai.workflow.input", True),
        ("gen_ai.workflow.output", True),
        ("gen_ai.workflow.name", False),
        # Haystack's own tracer, content tracing on: a pipeline's, a component's, an agent's
        # and its model and tool calls' input and output
        ("haystack.pipeline.input_data", True),
        ("haystack.component.output", True),
        ("haystack.agent.output", True),
        ("haystack.agent.step.llm.input", True),
        ("haystack.agent.step.tool.input", True),
        ("haystack.agent.step.tool.output", True),
        ("haystack.component.type", False),
        ("haystack.tool.name", False),
        # Mastra's telemetry: the prompt and response, a tool call's arguments and result,
        # a traced method's arguments and result; Genkit's: an action's input and output
        ("stream.prompt.messages", True),
        ("stream.response.text", True),
        ("stream.toolCall.args", True),
        ("stream.toolCall.result", True),
        ("agent.generate.argument.0", True),
        ("workflow.executionWorkflow.step.llm-execution.result", True),
        ("stream.toolCall.toolName", False),
        ("agent.generate.argument", False),
        ("genkit:input", True),
        ("genkit:output", True),
        ("genkit:path", False),
        ("gen_ai.tool.definitions", False),  # the tools' schemas
        ("gen_ai.request.model", False),
        ("gen_ai.prompt_tokens", False),  # a name that only starts like one
        ("llm.token_count.prompt", False),
        ("db.query.text", False),
        ("http.url", False),
        ("", False),
        (".", False),
    ],
)
def test_content_attributes_are_told_by_name_and_dotted_prefix(key, content):
    """The risk map shows these by size only (flowmap report --show-content shows them)."""
    from flowmap.conventions import holds_content

    assert holds_content(key) is content


@pytest.mark.parametrize(("key", "boundary", "content"), [
    ("db.query.summary", "vector", True),  # OpenLIT: Chroma's upsert, its documents and metadata
    ("db.query.text", "vector", True),  # OpenLIT: Milvus' insert, the rows
    ("db.statement", "memory", True),
    ("db.query.text", "db", False),  # an SQL statement: the query's shape
    ("db.query.text", "cache", False),
    ("db.query.text", None, False),
    ("db.collection.name", "vector", False),
])
def test_a_stores_query_text_is_content_on_vector_and_memory_spans(key, boundary, content):
    from flowmap.conventions import holds_content

    assert holds_content(key, boundary) is content


@pytest.mark.parametrize(
    "attributes, refused",
    [
        ({"http.response.status_code": 401}, True),
        ({"http.status_code": "403"}, True),
        ({"http.response.status_code": 407.0}, True),
        ({"http.response.status_code": 404}, False),
        # gRPC (contrib instrumentations: the numeric code) answers 401/403 with
        # UNAUTHENTICATED (16) / PERMISSION_DENIED (7)
        ({"rpc.system": "grpc", "rpc.grpc.status_code": 16}, True),
        ({"rpc.system": "grpc", "rpc.grpc.status_code": "7"}, True),
        ({"rpc.system": "grpc", "rpc.grpc.status_code": 5}, False),  # NOT_FOUND
        ({"rpc.system": "grpc", "rpc.grpc.status_code": 0}, False),
        ({"rpc.system": "grpc", "rpc.grpc.status_code": True}, False),
        # semantic conventions 1.38 on: the code's name in rpc.response.status_code
        ({"rpc.system.name": "grpc", "rpc.response.status_code": "UNAUTHENTICATED"}, True),
        ({"rpc.system.name": "grpc", "rpc.response.status_code": "PERMISSION_DENIED"}, True),
        ({"rpc.system.name": "grpc", "rpc.response.status_code": "16"}, True),
        ({"rpc.system.name": "grpc", "rpc.response.status_code": "DEADLINE_EXCEEDED"}, False),
        # another system's numbers are its own (JSON-RPC's 7 is no refusal); names still count
        ({"rpc.system.name": "jsonrpc", "rpc.response.status_code": "7"}, False),
        ({"rpc.system.name": "connect_rpc", "rpc.response.status_code": "unauthenticated"}, True),
        ({"rpc.system": "connect_rpc", "rpc.connect_rpc.error_code": "permission_denied"}, True),
        ({"rpc.system": "connect_rpc", "rpc.connect_rpc.error_code": "not_found"}, False),
        # gRPC over HTTP/2 answers 200 and puts its status in the trailers (.NET records both)
        ({"http.response.status_code": 200, "rpc.grpc.status_code": 16}, True),
        ({}, False),
    ],
)
def test_a_request_refused_unauthenticated_over_http_or_rpc(attributes, refused):
    """The one test the analyzer's unscoped-entry and the runtime's alerts share: RPC
    server spans are judged as HTTP ones, so gRPC's answers to 401/403 count as a 401."""
    from flowmap.conventions import refused_request

    assert refused_request(attributes) is refused


@pytest.mark.parametrize(
    ("kind", "attributes", "role"),
    [
        # semconv 1.27 on: create / send / receive / process / settle
        (SPAN_KIND_PRODUCER, {"messaging.system": "kafka", "messaging.operation.type": "create"}, "carries"),
        (SPAN_KIND_PRODUCER, {"messaging.system": "kafka", "messaging.operation.type": "send"}, "carries"),
        # a batch send whose messages have create spans is a CLIENT span (1.27)
        (SPAN_KIND_CLIENT, {"messaging.system": "kafka", "messaging.operation.type": "send"}, "carries"),
        (SPAN_KIND_CLIENT, {"messaging.system": "kafka", "messaging.operation.type": "receive"}, "receives"),
        (SPAN_KIND_CONSUMER, {"messaging.system": "kafka", "messaging.operation.type": "process"}, "consumes"),
        (SPAN_KIND_CLIENT, {"messaging.system": "kafka", "messaging.operation.type": "settle"}, "settles"),
        # 1.26's publish and deliver (deprecated values of messaging.operation.type)
        (SPAN_KIND_PRODUCER, {"messaging.system": "kafka", "messaging.operation.type": "publish"}, "carries"),
        (SPAN_KIND_CONSUMER, {"messaging.system": "kafka", "messaging.operation.type": "deliver"}, "consumes"),
        # the older messaging.operation (1.24: publish, create, receive, deliver), any case
        (SPAN_KIND_PRODUCER, {"messaging.system": "rabbitmq", "messaging.operation": "Publish"}, "carries"),
        (SPAN_KIND_CONSUMER, {"messaging.system": "rabbitmq", "messaging.operation": "receive"}, "receives"),
        (SPAN_KIND_CONSUMER, {"messaging.system": "rabbitmq", "messaging.operation": "deliver"}, "consumes"),
        # before 1.21 a send wrote no operation (its kind said it); Celery writes no system
        (SPAN_KIND_PRODUCER, {"messaging.system": "rabbitmq", "messaging.destination": "q"}, "carries"),
        (SPAN_KIND_PRODUCER, {"celery.action": "apply_async", "messaging.message.id": "1"}, "carries"),
        (SPAN_KIND_CONSUMER, {"celery.action": "run", "messaging.message.id": "1"}, "consumes"),
        # confluent-kafka's instrumentation writes receive on its PRODUCER send span
        (SPAN_KIND_PRODUCER, {"messaging.system": "kafka", "messaging.operation": "receive"}, "carries"),
        # not about a message: a cache read linking to the span that filled the entry, a
        # PRODUCER span of no messaging convention
        (SPAN_KIND_CLIENT, {"db.system": "redis"}, "consumes"),
        (SPAN_KIND_PRODUCER, {"flowmap.boundary": "queue.publish"}, "consumes"),
        (SPAN_KIND_INTERNAL, {}, "consumes"),
    ],
)
def test_what_a_span_links_to_by_the_messaging_conventions(kind, attributes, role):
    from flowmap.conventions import link_role

    assert link_role(kind, attributes) == role
