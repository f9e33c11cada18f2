"""Traces written by real third-party instrumentations (tests/fixtures/third_party): every
call that crosses a boundary is recognised from its own conventions, a lost tenant is
HIGH there, and fully tagged traces give nothing at medium or above."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowmap.analysis import analyze
from flowmap.cli import app
from flowmap.loading import LoadStats, iter_traces
from flowmap.model import Severity
from flowmap.report_data import build_report_data
from flowmap.tagging import key_id_for, tag_for

FIXTURES = Path(__file__).parent / "fixtures" / "third_party"
DROPPED = sorted(FIXTURES.glob("*-dropped.jsonl"))
NEAR_MISS = sorted(FIXTURES.glob("*-nearmiss.jsonl"))
DOWNSTREAM = sorted(FIXTURES.glob("*-downstream.jsonl"))

# (file, span name) -> the boundary the span crosses, as its instrumentation describes it
EXPECTED = {
    ("botocore-dropped.jsonl", "SQS.SendMessage"): "queue.publish",
    ("botocore-dropped.jsonl", "SQS.ReceiveMessage"): "queue.consume",
    ("botocore-dropped.jsonl", "events send"): "queue.publish",
    ("botocore-dropped.jsonl", "DynamoDB.GetItem"): "db",
    ("botocore-dropped.jsonl", "chat amazon.nova-micro-v1:0"): "llm",
    ("celery-dropped.jsonl", "apply_async/tp.add"): "queue.publish",
    ("celery-dropped.jsonl", "run/tp.add"): "queue.consume",
    ("fastapi-app-dropped.jsonl", "GET /ask"): "http.server",
    ("fastapi-app-dropped.jsonl", "SET"): "cache",
    ("fastapi-app-dropped.jsonl", "chat gpt-4o-mini"): "llm",
    ("web-flask-dropped.jsonl", "GET /chat"): "http.server",
    ("web-django-dropped.jsonl", "GET chat"): "http.server",
    ("web-aiohttp-dropped.jsonl", "GET /chat"): "http.server",
    ("web-flask-dropped.jsonl", "SELECT"): "db",
    ("web-flask-dropped.jsonl", "GET"): "http.client",
    ("grpc-dropped.jsonl", "/tp.Echo/Say"): {"http.client", "http.server"},
    ("langchain-openinference-dropped.jsonl", "ChatOpenAI"): "llm",
    ("langchain-openinference-dropped.jsonl", "get_weather"): "tool",
    ("langchain-openinference-dropped.jsonl", "VectorStoreRetriever"): "vector",
    ("langchain-traceloop-dropped.jsonl", "invoke_agent LangGraph"): "agent",
    ("langchain-traceloop-dropped.jsonl", "execute_tool get_weather"): "tool",
    ("langchain-traceloop-dropped.jsonl", "vector_db_retrieve VectorStoreRetriever"): "vector",
    ("mcp-native-http-dropped.jsonl", "MCP send tools/list"): "tool.catalog",
    ("mcp-native-http-dropped.jsonl", "tools/call get_weather"): "tool",
    ("mcp-native-http-dropped.jsonl", "MCP send resources/read"): "http.client",
    ("openai-v2-latest-dropped.jsonl", "embeddings text-embedding-3-small"): "llm",
    ("openai-traceloop-dropped.jsonl", "openai.chat"): "llm",
    ("openai-openinference-dropped.jsonl", "ChatCompletion"): "llm",
    ("pydantic-ai-v5-dropped.jsonl", "invoke_agent weather_agent"): "agent",
    ("pydantic-ai-v2-dropped.jsonl", "running tool"): "tool",
    ("qdrant-dropped.jsonl", "qdrant.query_points"): "vector",
    ("redis-stable-dropped.jsonl", "INCRBY EXPIRE"): "cache",
    ("sqlalchemy-stable-dropped.jsonl", "SELECT :memory:"): "db",
    ("sqlite3-dropped.jsonl", "SELECT"): "db",
    ("urllib3-stable-dropped.jsonl", "POST"): "http.client",
    ("aiohttp-client-dropped.jsonl", "GET"): "http.client",
    ("openai-agents-openinference-dropped.jsonl", "get_weather"): "tool",
    ("openai-agents-openinference-dropped.jsonl", "generation"): "llm",
    ("openai-agents-openinference-dropped.jsonl", "weather_agent"): "agent",
    ("smolagents-openinference-dropped.jsonl", "SimpleTool"): "tool",
    ("smolagents-openinference-dropped.jsonl", "OpenAIModel.generate"): "llm",
    ("smolagents-openinference-dropped.jsonl", "weather_agent.run"): "agent",
    ("strands-dropped.jsonl", "execute_tool get_weather"): "tool",
    ("strands-dropped.jsonl", "chat"): "llm",
    ("strands-dropped.jsonl", "invoke_agent weather_agent"): "agent",
    ("google-adk-dropped.jsonl", "execute_tool get_weather"): "tool",
    ("google-adk-dropped.jsonl", "call_llm"): "llm",
    ("autogen-dropped.jsonl", "execute_tool get_weather"): "tool",
    ("autogen-dropped.jsonl", "invoke_agent weather_agent"): "agent",
    ("agno-openinference-dropped.jsonl", "weather_agent.run"): "agent",
    ("agno-openinference-dropped.jsonl", "OpenAIChat.invoke"): "llm",
    ("agno-openinference-dropped.jsonl", "get_weather"): "tool",
    ("agno-openinference-dropped.jsonl", "add_memory"): "tool",
    ("agno-traceloop-dropped.jsonl", "weather_agent.agent"): "agent",
    ("agno-traceloop-dropped.jsonl", "get_weather.tool"): "tool",
    ("llama-index-openinference-dropped.jsonl", "FunctionTool.acall"): "tool",
    ("llama-index-openinference-dropped.jsonl", "MockFunctionCallingLLM.achat"): "llm",
    ("llama-index-openinference-dropped.jsonl", "VectorIndexRetriever.aretrieve"): "vector",
    ("llama-index-openinference-dropped.jsonl", "MockEmbedding.get_text_embedding_batch"): "llm",
    # OpenInference writes a workflow agent's run as a CHAIN: no boundary, as any wrapper
    ("llama-index-openinference-dropped.jsonl", "FunctionAgent.run"): None,
    # OpenInference's CrewAI instrumentation writes the task run as the AGENT, the crew's
    # kickoff (named after the Crew instance's uuid) as a CHAIN; the model calls are the
    # OpenAI instrumentation's (CrewAI's native OpenAI provider)
    ("crewai-openinference-dropped.jsonl", "weather assistant._execute_core"): "agent",
    ("crewai-openinference-dropped.jsonl", "get_weather.run"): "tool",
    ("crewai-openinference-dropped.jsonl", "ChatCompletion"): "llm",
    ("crewai-openinference-dropped.jsonl", "Crew_059e9574-61c9-42f4-9dcf-dddc4c7db0eb.kickoff"): None,
    # Semantic Kernel's own spans (GenAI conventions); its function-calling loop is a wrapper
    ("semantic-kernel-dropped.jsonl", "invoke_agent weather_agent"): "agent",
    ("semantic-kernel-dropped.jsonl", "execute_tool weather-get_weather"): "tool",
    ("semantic-kernel-dropped.jsonl", "chat gpt-4o-mini"): "llm",
    ("semantic-kernel-dropped.jsonl", "text_completions gpt-3.5-turbo-instruct"): "llm",
    ("semantic-kernel-dropped.jsonl", "AutoFunctionInvocationLoop"): None,
    # CrewAI 1.15 under OpenLIT: the crew's run (naming its workflow), the task's agent run,
    # the agent's executor (a Flow, naming its workflow), the crew's construction (CLIENT);
    # each step of the executor's Flow is an invoke_agent naming no agent: none (were agents)
    ("crewai-openlit-dropped.jsonl", "invoke_workflow crew"): "agent",
    ("crewai-openlit-dropped.jsonl", "invoke_agent weather assistant"): "agent",
    ("crewai-openlit-dropped.jsonl", "invoke_workflow AgentExecutor"): "agent",
    ("crewai-openlit-dropped.jsonl", "create_agent weather assistant"): "agent",
    ("crewai-openlit-dropped.jsonl", "invoke_agent check_max_iterations"): None,
    ("crewai-openlit-dropped.jsonl", "invoke_agent call_llm_native_tools"): None,
    ("crewai-openlit-dropped.jsonl", "invoke_agent execute_native_tool"): None,
    ("crewai-openlit-dropped.jsonl", "chat gpt-4o-mini"): "llm",
    # under OpenLLMetry: the crew's kickoff and the task's run name no agent (none, as
    # OpenInference's kickoff CHAIN; were agents), the agent's run names its agent
    ("crewai-traceloop-dropped.jsonl", "crewai.workflow"): None,
    ("crewai-traceloop-dropped.jsonl", "What is the weather in Paris?.task"): None,
    ("crewai-traceloop-dropped.jsonl", "weather assistant.agent"): "agent",
    ("crewai-traceloop-dropped.jsonl", "openai.chat"): "llm",
    # Microsoft Agent Framework's own spans (GenAI conventions)
    ("agent-framework-dropped.jsonl", "invoke_agent weather_agent"): "agent",
    ("agent-framework-dropped.jsonl", "execute_tool get_weather"): "tool",
    ("agent-framework-dropped.jsonl", "chat gpt-4o-mini"): "llm",
    # Node.js: the HTTP instrumentation (old and stable conventions) and undici's fetch
    # name every span after its method; the service's own span is no boundary
    ("node-http-dropped.jsonl", "GET"): {"http.client", "http.server"},
    ("node-http-stable-dropped.jsonl", "GET"): {"http.client", "http.server"},
    ("node-http-dropped.jsonl", "lookup_weather"): None,
    # JavaScript agent stacks: the Vercel AI SDK's own spans (ai.operationId) name its
    # provider calls and tool calls; its outer calls are wrappers, as LangChain.js's graph
    ("aisdk-dropped.jsonl", "ai.toolCall"): "tool",
    ("aisdk-dropped.jsonl", "ai.generateText.doGenerate"): "llm",
    ("aisdk-dropped.jsonl", "ai.streamText.doStream"): "llm",
    ("aisdk-dropped.jsonl", "ai.embed.doEmbed"): "llm",
    ("aisdk-dropped.jsonl", "ai.rerank.doRerank"): "llm",  # the documents sent to Cohere's reranker
    ("aisdk-dropped.jsonl", "ai.generateText"): None,
    ("aisdk-dropped.jsonl", "ai.streamText"): None,
    ("aisdk-dropped.jsonl", "ai.embed"): None,
    ("aisdk-dropped.jsonl", "ai.rerank"): None,
    ("aisdk-dropped.jsonl", "POST"): {"http.client", "http.server"},
    ("langchainjs-openinference-dropped.jsonl", "get_weather"): "tool",
    ("langchainjs-openinference-dropped.jsonl", "ChatOpenAI"): "llm",
    ("langchainjs-openinference-dropped.jsonl", "LangGraph"): None,
    ("langchainjs-openinference-dropped.jsonl", "POST"): {"http.client", "http.server"},
    # RabbitMQ (pika, aio-pika: messaging.system rabbitmq; the send a PRODUCER span with no
    # operation, the receive a CONSUMER span with messaging.operation receive) and
    # PostgreSQL (psycopg2, asyncpg, psycopg 3: db.system, or db.system.name when stable)
    ("pika-dropped.jsonl", "orders send"): "queue.publish",
    ("pika-dropped.jsonl", "orders receive"): "queue.consume",
    ("pika-dropped.jsonl", "INSERT"): "db",
    ("aio-pika-dropped.jsonl", ",orders send"): "queue.publish",
    ("aio-pika-dropped.jsonl", "orders receive"): "queue.consume",
    ("aio-pika-dropped.jsonl", "INSERT"): "db",
    ("aio-pika-dropped.jsonl", "SELECT"): "db",  # asyncpg's pool resets a released connection
    ("psycopg-dropped.jsonl", "SELECT"): "db",
    ("psycopg-stable-dropped.jsonl", "INSERT"): "db",
    # vector stores (OpenLLMetry: db.system chroma, lancedb, milvus; their writes too) and
    # memcached (contrib's pymemcache: db.system, or db.system.name when stable)
    ("chromadb-traceloop-dropped.jsonl", "chroma.query"): "vector",
    ("chromadb-traceloop-dropped.jsonl", "chroma.upsert"): "vector",
    ("lancedb-traceloop-dropped.jsonl", "lancedb.search"): "vector",
    ("lancedb-traceloop-dropped.jsonl", "lancedb.add"): "vector",
    ("milvus-traceloop-dropped.jsonl", "milvus.search"): "vector",
    ("milvus-traceloop-dropped.jsonl", "milvus.insert"): "vector",
    ("pymemcache-dropped.jsonl", "get"): "cache",
    ("pymemcache-dropped.jsonl", "set"): "cache",
    ("pymemcache-stable-dropped.jsonl", "get"): "cache",
    # OpenLIT: its vector stores' spans by their system (db.system.name; operation vectordb),
    # mem0's calls (operation memory) a memory's, and its internal steps (invoke_workflow,
    # naming the component) the stores they read and write, not agents
    ("chromadb-openlit-dropped.jsonl", "GET notes"): "vector",
    ("chromadb-openlit-dropped.jsonl", "UPSERT notes"): "vector",
    ("milvus-openlit-dropped.jsonl", "SEARCH notes"): "vector",
    ("milvus-openlit-dropped.jsonl", "INSERT notes"): "vector",
    ("mem0-openlit-dropped.jsonl", "memory add"): "memory",
    ("mem0-openlit-dropped.jsonl", "memory search"): "memory",
    ("mem0-openlit-dropped.jsonl", "memory add_to_vector_store"): "vector",
    ("mem0-openlit-dropped.jsonl", "memory search_vector_store"): "vector",
    ("mem0-openlit-dropped.jsonl", "memory create_memory"): "memory",
    # OpenLIT's agent stacks (gen_ai.operation.name): a workflow run that names its
    # workflow (LangGraph's graph, the OpenAI Agents SDK's trace) is an agent's; a
    # framework's in-process steps (LlamaIndex's, naming an endpoint) are none, but the
    # write to its vector store; its own agent spans, tool and model calls as written
    ("openai-openlit-dropped.jsonl", "chat gpt-4o-mini"): "llm",
    ("langgraph-openlit-dropped.jsonl", "invoke_workflow weather_agent"): "agent",
    ("langgraph-openlit-dropped.jsonl", "invoke_agent weather_agent"): "agent",
    ("langgraph-openlit-dropped.jsonl", "invoke_agent agent"): "agent",  # the graph's node
    ("langgraph-openlit-dropped.jsonl", "execute_tool get_weather"): "tool",
    ("langgraph-openlit-dropped.jsonl", "chat gpt-4o-mini"): "llm",
    ("langgraph-openlit-dropped.jsonl", "create_agent default"): "agent",  # compiled at start-up (CLIENT)
    ("openai-agents-openlit-dropped.jsonl", "invoke_workflow Agent workflow"): "agent",
    ("openai-agents-openlit-dropped.jsonl", "invoke_agent weather_agent"): "agent",
    ("openai-agents-openlit-dropped.jsonl", "execute_tool get_weather"): "tool",
    ("openai-agents-openlit-dropped.jsonl", "chat gpt-4o-mini"): "llm",
    ("llama-index-openlit-dropped.jsonl", "invoke_workflow document_split"): None,
    ("llama-index-openlit-dropped.jsonl", "invoke_workflow node_get_content"): None,
    ("llama-index-openlit-dropped.jsonl", "invoke_workflow index_build"): None,
    ("llama-index-openlit-dropped.jsonl", "invoke_workflow vector_store_add"): "vector",
    ("llama-index-openlit-dropped.jsonl", "chat gpt-4o-mini"): "llm",
    # DSPy under OpenInference: the modules and the adapter are CHAINs, the LM call the LLM,
    # each tool (and ReAct's own finish) a TOOL
    ("dspy-openinference-dropped.jsonl", "ReAct.forward"): None,
    ("dspy-openinference-dropped.jsonl", "Predict.forward"): None,
    ("dspy-openinference-dropped.jsonl", "ChatAdapter.__call__"): None,
    ("dspy-openinference-dropped.jsonl", "LM.__call__"): "llm",
    ("dspy-openinference-dropped.jsonl", "completion"): "llm",  # LiteLLM's, below DSPy's LM
    ("dspy-openinference-dropped.jsonl", "get_weather.__call__"): "tool",
    # Haystack's own tracer: a component's run by its class (the retriever, the agent; the
    # prompt builder none), the agent's run, its model and tool calls (were all none)
    ("haystack-native-dropped.jsonl", "haystack.component.run"): {"vector", None, "agent"},
    ("haystack-native-dropped.jsonl", "haystack.pipeline.run"): None,
    ("haystack-native-dropped.jsonl", "haystack.agent.run"): "agent",
    ("haystack-native-dropped.jsonl", "haystack.agent.step"): None,
    ("haystack-native-dropped.jsonl", "haystack.agent.step.llm"): "llm",
    ("haystack-native-dropped.jsonl", "haystack.agent.step.tool"): "tool",
    # OpenInference traces a pipeline's components (Haystack 3's Agent a CHAIN, nothing
    # inside it); OpenLLMetry (Haystack 2) the pipeline's run and the OpenAI calls
    ("haystack-openinference-dropped.jsonl", "InMemoryBM25Retriever.run"): "vector",
    ("haystack-openinference-dropped.jsonl", "ChatPromptBuilder.run"): None,
    ("haystack-openinference-dropped.jsonl", "Agent.run"): None,
    ("haystack-openinference-dropped.jsonl", "Pipeline.run"): None,
    ("haystack-traceloop-dropped.jsonl", "haystack_pipeline.workflow"): None,
    ("haystack-traceloop-dropped.jsonl", "haystack.openai.chat"): "llm",
    ("litellm-openinference-dropped.jsonl", "completion"): "llm",
    ("litellm-traceloop-dropped.jsonl", "litellm.chat"): "llm",
    # the Anthropic SDK writes a span of its own (GenAI and HTTP attributes) beside the
    # instrumentation's
    ("anthropic-openinference-dropped.jsonl", "messages.create"): "llm",
    ("anthropic-openinference-dropped.jsonl", "anthropic.messages.create"): "llm",
    ("anthropic-traceloop-dropped.jsonl", "anthropic.chat"): "llm",
    # Mastra's telemetry (0.x): the agent's runs, its provider call, its tool call; its
    # workflow steps and the outer mastra.stream none (all were none)
    ("mastra-dropped.jsonl", "agent.generate"): "agent",
    ("mastra-dropped.jsonl", "agent.stream"): "agent",
    ("mastra-dropped.jsonl", "mastra.stream.aisdk.doStream"): "llm",
    ("mastra-dropped.jsonl", "mastra.stream.toolCall"): "tool",
    ("mastra-dropped.jsonl", "mastra.stream"): None,
    ("mastra-dropped.jsonl", "agent.convertTools"): None,
    ("mastra-dropped.jsonl", "workflow.executionWorkflow.step.toolCallStep"): None,
    # Genkit's own spans: an action's type (the flow and generate none; all were none)
    ("genkit-dropped.jsonl", "fake/gpt-4o-mini"): "llm",
    ("genkit-dropped.jsonl", "get_weather"): "tool",
    ("genkit-dropped.jsonl", "weatherFlow"): None,
    ("genkit-dropped.jsonl", "generate"): None,
    # LangGraph.js under OpenInference (jsgraphs/): the model and the tool; the graph and
    # its nodes are CHAINs, as LangChain.js's graph (none)
    ("langgraphjs-openinference-dropped.jsonl", "ChatOpenAI"): "llm",
    ("langgraphjs-openinference-dropped.jsonl", "get_weather"): "tool",
    ("langgraphjs-openinference-dropped.jsonl", "weather-graph"): None,
    ("langgraphjs-openinference-dropped.jsonl", "agent"): None,
    ("langgraphjs-openinference-dropped.jsonl", "tools"): None,
    # LangSmith's OpenTelemetry mode writes no span of its own: the runs' attributes
    # (gen_ai.operation.name "chain") land on the agent's server span, still the server
    ("langgraphjs-langsmith-dropped.jsonl", "POST"): {"http.client", "http.server"},
    # the OpenAI Agents SDK through OpenInference's processor: the SDK's trace (an AGENT
    # named after the workflow, a CHAIN of the same name below it), the agent, its model
    # calls (generation) and tool; with OpenInference's OpenAI instrumentation, the client's
    # calls too
    ("openai-agentsjs-openinference-dropped.jsonl", "Agent workflow"): {"agent", None},
    ("openai-agentsjs-openinference-dropped.jsonl", "weather-agent"): "agent",
    ("openai-agentsjs-openinference-dropped.jsonl", "generation"): "llm",
    ("openai-agentsjs-openinference-dropped.jsonl", "get_weather"): "tool",
    ("openai-agentsjs-openinference-dropped.jsonl", "turn"): None,
    ("openai-agentsjs-openinference-client-dropped.jsonl", "OpenAI Chat Completions"): "llm",
}


def _load(path: Path):
    stats = LoadStats()
    warnings: list[str] = []
    traces = list(iter_traces([str(path)], on_warning=warnings.append, stats=stats))
    return traces, warnings


def test_the_fixtures_are_there():
    # (the fan-out files: runtime only; the JSON filter files: a raw and a near-miss mode only)
    paired = [p for p in NEAR_MISS if "-fanout-" not in p.name and not p.name.startswith("jsonfilter-")]
    assert len(DROPPED) >= 30 and len(paired) == len(DROPPED) and len(DOWNSTREAM) >= 5


@pytest.mark.parametrize(("name", "span"), sorted(EXPECTED), ids=[f"{f}:{s}" for f, s in sorted(EXPECTED)])
def test_boundary_inferred_from_the_instrumentations_own_attributes(name, span):
    traces, warnings = _load(FIXTURES / name)
    assert warnings == []
    found = {s.boundary for t in traces for s in t.spans.values() if s.name == span}
    expected = EXPECTED[(name, span)]
    assert found == (expected if isinstance(expected, set) else {expected})


@pytest.mark.parametrize("path", DROPPED, ids=lambda p: p.name)
def test_a_lost_tenant_is_found_and_high_where_a_boundary_is_crossed(path):
    traces, warnings = _load(path)
    assert warnings == []
    spans = {s.span_id: s for t in traces for s in t.spans.values()}
    findings = analyze([path]).findings
    for f in findings:
        if f.rule == "context-dropped":
            at_boundary = spans[f.span_id].boundary is not None
            assert f.severity is (Severity.HIGH if at_boundary else Severity.MEDIUM), (f.span_name, f.boundary)
    # the calls ran without the tenant: below a tagged span (context-dropped), in a
    # server that never bound one (fastapi-app: unscoped-entry), or in a root the context
    # never reached (node-mq-consumer: orphan-root); high where the drop is at a boundary,
    # else medium naming the boundary below that ran without it (Google ADK)
    lost = [f for f in findings if f.rule in ("context-dropped", "unscoped-entry", "orphan-root")
            and (f.severity is Severity.HIGH or f.reached is not None)]
    assert lost, [(f.rule, f.severity.name, f.span_name) for f in findings]


@pytest.mark.parametrize("path", NEAR_MISS, ids=lambda p: p.name)
def test_fully_tagged_traces_give_nothing_at_medium_or_above(path):
    _, warnings = _load(path)
    assert warnings == []
    loud = [(f.rule, f.span_name) for f in analyze([path]).findings if f.severity >= Severity.MEDIUM]
    assert loud == []


@pytest.mark.parametrize("path", DOWNSTREAM, ids=lambda p: p.name)
def test_a_receiving_service_that_ignores_the_tenant_is_found(path):
    # OpenLLMetry's MCP instrumentation writes INTERNAL spans with no convention that says
    # a call was received: found, but not at a boundary (medium)
    severity = Severity.MEDIUM if path.name.startswith("mcp-traceloop") else Severity.HIGH
    found = [f for f in analyze([path]).findings if f.rule == "context-dropped" and f.severity is severity]
    assert found, "the receiving side ran without the caller's tenant"


# -- what stop 17's audit of agent frameworks found --------------------------------------

def _loud(name: str) -> list[tuple[str, str, str]]:
    return sorted((f.rule, f.severity.name, f.span_name) for f in analyze([FIXTURES / name]).findings
                  if f.severity >= Severity.MEDIUM)


@pytest.mark.parametrize("name", ["openai-agents-openinference-schema.jsonl", "smolagents-openinference-schema.jsonl"])
def test_a_tenant_parameter_the_model_left_unfilled_is_no_finding(name):
    """The tool declares an optional tenant_id (OpenInference writes its schema on every
    call, tool.parameters); the model passed only the city."""
    assert _loud(name) == []


def test_strands_tool_input_in_its_tool_message_event_is_judged():
    """Strands' default conventions: the model's arguments (another tenant's id) are only in
    the execute_tool span's gen_ai.tool.message event."""
    assert _loud("strands-other-tenant-mct.jsonl") == [("model-chosen-tenant", "HIGH", "execute_tool get_weather")]


def test_autogens_create_agent_at_start_up_is_no_orphan():
    """AutoGen writes a CLIENT create_agent span naming no server when it builds the agent."""
    findings = analyze([FIXTURES / "autogen-nearmiss.jsonl"]).findings
    assert not [f for f in findings if f.span_name.startswith("create_agent")]


@pytest.mark.parametrize(("name", "rule", "span", "reached"), [
    ("google-adk-sync-leak.jsonl", "orphan-root", "invocation", "llm 'fw-app call_llm'"),  # a real leak
    ("google-adk-dropped.jsonl", "context-dropped", "invocation", "llm 'fw-app call_llm'"),
    ("llama-index-openinference-wrapper-lost.jsonl", "context-dropped", "FunctionAgent.run",
     "llm 'fw-app OpenAI._prepare_chat_with_tools'"),
    ("crewai-openinference-dropped.jsonl", "context-dropped", "Crew_059e9574-61c9-42f4-9dcf-dddc4c7db0eb.kickoff",
     "agent 'fw-app weather assistant._execute_core'"),
])
def test_a_tenant_lost_at_a_frameworks_wrapper_span_names_the_calls_that_ran_without_it(name, rule, span, reached):
    """The first untagged span is a wrapper (no boundary: medium, per the contract); the
    model and tool calls below it ran without the tenant: the finding names the first."""
    (f,) = [f for f in analyze([FIXTURES / name]).findings if f.rule == rule and f.span_name == span]
    assert f.severity is Severity.MEDIUM and f.reached == reached and reached in f.message


@pytest.mark.parametrize(("name", "lost"), [
    ("agno-openinference-memory-thread.jsonl", {("add_memory", "tool"), ("OpenAIChat.invoke", "llm")}),
    ("agno-traceloop-memory-thread.jsonl", {("add_memory.tool", "tool")}),
])
def test_agnos_own_memory_thread_pool_losing_the_tenant_is_found(name, lost):
    """Agno's sync Agent.run hands memory extraction (a model call and its add_memory
    tool) to its own ThreadPoolExecutor, which does not carry contextvars: those calls
    run as roots with no tenant. The nearmiss files are the same runs with the agent's
    background executor wrapped in flowmap.propagation.ContextExecutor."""
    findings = [f for f in analyze([FIXTURES / name]).findings if f.severity >= Severity.MEDIUM]
    assert {f.rule for f in findings} == {"orphan-root"}
    assert {f.severity for f in findings} == {Severity.HIGH}
    assert {(f.span_name, f.boundary) for f in findings} == lost


def test_llama_index_tenants_run_concurrently_keep_their_own_tags():
    """Two tenants' FunctionAgent runs interleaved on one event loop (a sync tool LlamaIndex
    runs in a thread, an async tool, a retriever): each trace carries its own tenant's tag
    on every span, the request's included, and never the other's."""
    traces, _ = _load(FIXTURES / "llama-index-openinference-nearmiss.jsonl")
    tags = [{s.attributes.get("flowmap.tenant") for s in t.spans.values()} for t in traces]
    assert len(tags) == 2 and all(len(t) == 1 and None not in t for t in tags)
    assert tags[0] != tags[1]


def test_crewai_tenants_run_concurrently_keep_their_own_tags_in_crewais_tool_threads():
    """Two tenants' Crew.kickoff runs in two request threads at once: CrewAI runs the tool
    in a thread of its own (asyncio_0/asyncio_1 when recorded), with a copy of the
    context, so the tool's memory boundary, the model calls and the HTTP requests below
    them carry the request's tag, never the other tenant's; and the dropped run's lost
    tenant is found only where the crew's run starts (a CHAIN: medium, naming the agent)."""
    traces, _ = _load(FIXTURES / "crewai-openinference-nearmiss.jsonl")
    tags = [{s.attributes.get("flowmap.tenant") for s in t.spans.values()} for t in traces]
    assert len(tags) == 2 and all(len(t) == 1 and None not in t for t in tags)
    assert tags[0] != tags[1]
    kinds = {(s.name, s.boundary) for t in traces for s in t.spans.values()}
    assert {("memory.recall", "memory"), ("get_weather.run", "tool"), ("ChatCompletion", "llm"),
            ("weather assistant._execute_core", "agent")} <= kinds
    assert sorted((f.rule, f.severity.name) for f in analyze([FIXTURES / "crewai-openinference-dropped.jsonl"]).findings
                  ) == [("context-dropped", "MEDIUM")] * 2


def test_llama_index_tool_handing_work_to_a_bare_thread_pool_is_found():
    """The same runs, but the async recall_memory tool submits its memory boundary to a plain
    ThreadPoolExecutor: the boundary refuses there (no tenant), its span is a root with no
    tenant, HIGH; the agent's own spans, tagged, give nothing."""
    findings = [f for f in analyze([FIXTURES / "llama-index-openinference-thread-pool.jsonl"]).findings
                if f.severity >= Severity.MEDIUM]
    assert {(f.rule, f.severity, f.span_name, f.boundary) for f in findings} == {
        ("orphan-root", Severity.HIGH, "memory.recall", "memory")}
    assert len(findings) == 2  # one per tenant's request


# what the recorded runs' user asked, the model answered, the tool returned and the
# retriever found: the risk map, a page made to be shared, shows none of it by default
_CONVERSATION = ("weather in Paris", "sunny", "doc two")


def _shown_values(name: str, content: bool) -> list[str]:
    data = build_report_data(analyze([FIXTURES / name]), content=content)
    return [v for t in data.traces.values() for s in t.spans for _, v in s.attributes]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.jsonl")))
def test_no_conversation_or_tool_content_in_the_risk_map_of_any_instrumentation(name):
    """Pydantic AI's pydantic_ai.all_messages and final_result, OpenLLMetry's gen_ai.task.input
    and .output (LangGraph) and mcp.response.value (an MCP tool's result), OpenInference's
    llm.choices.0.completion.text were shown in full: the report's content names missed them."""
    leaked = [v for v in _shown_values(name, content=False) for p in _CONVERSATION if p in v]
    assert leaked == []


def test_the_conversation_phrases_are_in_the_fixtures_so_the_content_test_can_fail():
    shown = " ".join(v for p in FIXTURES.glob("*.jsonl") for v in _shown_values(p.name, content=True))
    assert all(p in shown for p in _CONVERSATION)


# -- Node.js: two services over loopback, written by the JavaScript SDK's serializer -----

NODE = sorted(FIXTURES.glob("node-http-*.jsonl"))
NODE_KEY = "node-fixtures-key"  # the test key the fixtures' tags were made with (README)
_LOST_AT_TOOLS = ("context-dropped", "high", "lost the tenant of its parent 'node-api GET' in another service")
_OTHER_TENANT = ("cross-tenant", "critical", "runs for a different tenant than its parent 'node-api GET'")
# file -> what flowmap check reports at each of node-tools' two http.server spans
NODE_FINDINGS = {
    "node-http-nearmiss.jsonl": None,
    "node-http-stable-nearmiss.jsonl": None,
    "node-http-dropped.jsonl": _LOST_AT_TOOLS,
    "node-http-stable-dropped.jsonl": _LOST_AT_TOOLS,
    "node-http-downstream.jsonl": _LOST_AT_TOOLS,
    "node-http-cross-tenant.jsonl": _OTHER_TENANT,
}


def test_every_node_fixture_has_its_findings_stated():
    assert sorted(p.name for p in NODE) == sorted(NODE_FINDINGS)


def _spans(name: str) -> dict[str, object]:
    traces, warnings = _load(FIXTURES / name)
    assert warnings == []
    return {s.span_id: s for t in traces for s in t.spans.values()}


@pytest.mark.parametrize("name", sorted(NODE_FINDINGS))
def test_node_services_findings_through_the_command_line(name, tmp_path, monkeypatch):
    """flowmap check --format json on the file: exactly one finding at each of node-tools'
    server spans (called by node-api's http.get and fetch client spans), none elsewhere."""
    monkeypatch.chdir(tmp_path)  # no pyproject.toml settings
    result = CliRunner().invoke(app, ["check", "--format", "json", str(FIXTURES / name)])
    expected = NODE_FINDINGS[name]
    assert result.exit_code == (1 if expected else 0), result.output
    assert "warning" not in result.stderr
    findings = json.loads(result.stdout)["findings"]
    spans = _spans(name)
    tools_servers = {sid for sid, s in spans.items() if s.service == "node-tools" and s.kind == 2}
    assert len(tools_servers) == 2
    if expected is None:
        assert findings == []
        return
    rule, severity, message = expected
    assert sorted(f["span_id"] for f in findings) == sorted(tools_servers)
    for f in findings:
        parent = spans[f["parent_span_id"]]
        assert (parent.service, parent.kind, parent.boundary) == ("node-api", 3, "http.client")
        assert (f["rule"], f["severity"], f["span_name"], f["service"], f["boundary"], f["parent_name"]) == (
            rule, severity, "GET", "node-tools", "http.server", "GET")
        assert message in f["message"]


@pytest.mark.parametrize("path", NODE, ids=lambda p: p.name)
def test_the_javascript_serializers_encoding_is_read_as_written(path):
    """JsonTraceSerializer writes hex ids, times as decimal strings, enums and 64-bit
    integers as JSON numbers, every empty list and count, a double array holding NaN and
    null as {"doubleValue": null} and {} (JSON has no NaN), and one batch of many spans of
    several scopes a line: all read, with no warning, and each span where it belongs."""
    spans = _spans(path.name)
    assert len(spans) == 7
    by = {}
    for s in spans.values():
        by.setdefault((s.service, s.kind, s.boundary), []).append(s)
    assert {k: len(v) for k, v in by.items()} == {
        ("node-api", 2, "http.server"): 1, ("node-api", 3, "http.client"): 2,
        ("node-tools", 2, "http.server"): 2, ("node-tools", 1, None): 2,
    }
    (entry,) = by[("node-api", 2, "http.server")]
    assert entry.parent_span_id is None and len({s.trace_id for s in spans.values()}) == 1
    for client in by[("node-api", 3, "http.client")]:
        assert client.parent_span_id == entry.span_id
        assert client.attributes["flowmap.baggage.sent"] is (path.name != "node-http-downstream.jsonl")
        port = client.attributes.get("server.port", client.attributes.get("net.peer.port"))
        assert type(port) is int and port > 0
    assert {spans[s.parent_span_id].kind for s in by[("node-tools", 2, "http.server")]} == {3}
    for s in by[("node-tools", 1, None)]:
        assert spans[s.parent_span_id].service == "node-tools"
        assert {k: v for k, v in s.attributes.items() if k.startswith("weather.")} == {
            "weather.readings": [21.5, None, None], "weather.stations": 2, "weather.cached": False}
        ((event_name, event_attrs),) = [(e.name, e.attributes) for e in s.events]
        assert (event_name, event_attrs) == ("cache.miss", {"cache.entries": 0})
        assert s.start_ns <= s.events[0].time_unix_nano <= s.end_ns and s.start_ns > 1_600_000_000 * 10**9


def test_node_fixtures_carry_flowmaps_own_tags_and_never_the_raw_ids():
    """The services tag with tags made by flowmap tag under the test key, and name the key
    by its flowmap.key_id: the analyzer compares them as it compares Python's."""
    acme, globex = tag_for(NODE_KEY, "tenant-acme"), tag_for(NODE_KEY, "tenant-globex")
    tags, keys = {}, set()
    for path in NODE:
        assert b"tenant-acme" not in path.read_bytes() and b"tenant-globex" not in path.read_bytes()
        spans = _spans(path.name).values()
        tags[path.name] = {s.attributes.get("flowmap.tenant") for s in spans}
        keys |= {s.key_id for s in spans if s.tenant is not None}
    assert keys == {key_id_for(NODE_KEY)}
    assert tags["node-http-nearmiss.jsonl"] == {acme}
    assert tags["node-http-dropped.jsonl"] == tags["node-http-downstream.jsonl"] == {acme, None}
    assert tags["node-http-cross-tenant.jsonl"] == {acme, globex}


# -- JavaScript agent stacks: the Vercel AI SDK and LangChain.js (OpenInference) --------

JS_AGENTS = sorted([*FIXTURES.glob("aisdk-*.jsonl"), *FIXTURES.glob("langchainjs-*.jsonl")])
MODEL_CHOSE = "globex-7"  # the raw id the fake model passes in the -mct files' tool calls


def _lost(span: str, reached: str | None, boundary: str | None = None, severity: str = "medium"):
    return ("context-dropped", severity, span, boundary, reached)


def _chosen(span: str, boundary: str):
    return ("model-chosen-tenant", "high", span, boundary, None)


# file -> what flowmap check --format json reports: (rule, severity, span, boundary, reached)
JS_AGENT_FINDINGS = {
    "aisdk-nearmiss.jsonl": [],
    "aisdk-schema.jsonl": [],
    # the tenant lost below the request: at each of the SDK's outer calls, medium, naming
    # the provider call below that ran without it
    "aisdk-dropped.jsonl": [
        *[_lost("ai.embed", "llm 'aisdk-agent ai.embed.doEmbed'")] * 2,
        *[_lost("ai.rerank", "llm 'aisdk-agent ai.rerank.doRerank'")] * 2,
        _lost("ai.generateText", "llm 'aisdk-agent ai.generateText.doGenerate'"),
        _lost("ai.streamText", "llm 'aisdk-agent ai.streamText.doStream'"),
    ],
    "aisdk-other-tenant-mct.jsonl": [_chosen("ai.toolCall", "tool")] * 2,
    # a client-side tool: no tool span, the model's own calls are flagged
    "aisdk-client-tool-mct.jsonl": [_chosen("ai.generateText.doGenerate", "llm"), _chosen("ai.streamText.doStream", "llm")],
    "langchainjs-openinference-nearmiss.jsonl": [],
    "langchainjs-openinference-schema.jsonl": [],
    # OpenInference's spans are not made active: the model's HTTP requests hang from the
    # server span, high; the graph's run, a CHAIN, medium
    "langchainjs-openinference-dropped.jsonl": [
        *[_lost("POST", None, "http.client", "high")] * 4,
        *[_lost("LangGraph", "llm 'langchain-agent ChatOpenAI'")] * 2,
    ],
    "langchainjs-openinference-other-tenant-mct.jsonl": [_chosen("get_weather", "tool")] * 2,
}


def _check(name: str, tmp_path, monkeypatch, *args: str):
    monkeypatch.chdir(tmp_path)  # no pyproject.toml settings
    return CliRunner().invoke(app, ["check", *args, str(FIXTURES / name)])


def _check_states(name: str, expected: list[tuple], hidden: tuple[str, ...], tmp_path, monkeypatch) -> None:
    """flowmap check --format json on fixture ``name``: exactly the ``expected`` findings
    (rule, severity, span, boundary, reached), read with no warning, exit 1 when one is
    high; a model-chosen tenant names the argument; none of the raw ids ``hidden`` (the
    one the model chose, the tenants') is shown."""
    result = _check(name, tmp_path, monkeypatch, "--format", "json")
    assert result.exit_code == (1 if any(f[1] in ("high", "critical") for f in expected) else 0), result.output
    assert "warning" not in result.stderr
    out = json.loads(result.stdout)
    assert out["warnings"] == []
    findings = out["findings"]
    assert sorted((f["rule"], f["severity"], f["span_name"], f["boundary"], f["reached"]) for f in findings
                  ) == sorted(expected)
    for f in findings:
        if f["rule"] == "model-chosen-tenant":
            assert "('tenant_id')" in f["message"]
    assert not [raw for raw in hidden if raw in result.stdout]


@pytest.mark.parametrize("path", JS_AGENTS, ids=lambda p: p.name)
def test_js_agents_tenants_keep_their_own_tags(path):
    """Two requests at once on one event loop (acme's and globex's; acme's twice in the
    -mct files): each trace carries flowmap's tag of its own tenant, made with the test
    key, on its server span (and on every span where the tagging processor runs), never
    the other's; the loader reads the serializer's output with no warning."""
    traces, warnings = _load(path)
    assert warnings == []
    acme, globex = tag_for(NODE_KEY, "tenant-acme"), tag_for(NODE_KEY, "tenant-globex")
    tagged = "dropped" not in path.name
    roots = []
    for t in traces:
        tags = {s.attributes.get("flowmap.tenant") for s in t.spans.values()}
        (root,) = [s for s in t.spans.values() if s.parent_span_id is None]
        assert root.kind == 2 and root.tenant in (acme, globex)
        assert tags == ({root.tenant} if tagged else {root.tenant, None})
        assert {s.key_id for s in t.spans.values() if s.tenant is not None} == {key_id_for(NODE_KEY)}
        roots.append(root.tenant)
    assert sorted(roots) == sorted([acme, acme] if path.name.endswith("-mct.jsonl") else [acme, globex])


# -- JavaScript agent frameworks' own telemetry: Mastra and Genkit (jsagents/) -------------

JS_FRAMEWORKS = sorted(p for g in ("mastra", "genkit", "langgraphjs", "openai-agentsjs")
                       for p in FIXTURES.glob(f"{g}-*.jsonl"))

_JSGRAPHS = ("langgraphjs-openinference", "langgraphjs-langsmith", "openai-agentsjs-openinference",
             "openai-agentsjs-openinference-client")

# file -> what flowmap check --format json reports: (rule, severity, span, boundary, reached)
JS_FRAMEWORK_FINDINGS = {
    # (Mastra's constructor traces its setters at start-up, mastra.setLogger: was an
    # orphan-root, medium, in every Mastra file)
    "mastra-nearmiss.jsonl": [],
    "genkit-nearmiss.jsonl": [],
    # the tool's lookup run by a loop started at start-up: its HTTP call a root, no tenant
    "mastra-dropped.jsonl": [("orphan-root", "high", "GET", "http.client", None)] * 2,
    "genkit-dropped.jsonl": [("orphan-root", "high", "GET", "http.client", None)] * 2,
    # Mastra's traced methods replace the context's baggage: tagged from the baggage only,
    # the agent's run below agent.generate lost the tenant (was medium: no agent boundary)
    "mastra-baggage-replaced.jsonl": [_lost("agent.stream", None, "agent", "high")] * 2,
    # (were a dozen tenant-in-telemetry findings each: no tool span, the arguments not read,
    # and Mastra's "[MaxDepth]" taken for a raw id)
    "mastra-other-tenant-mct.jsonl": [_chosen("mastra.stream.toolCall", "tool")] * 2,
    "genkit-other-tenant-mct.jsonl": [_chosen("get_weather", "tool")] * 2,
    # LangGraph.js (OpenInference; LangSmith's OpenTelemetry mode) and the OpenAI Agents SDK
    # (OpenInference's processor, alone and with its OpenAI instrumentation): jsgraphs/
    **{f"{stack}-nearmiss.jsonl": [] for stack in _JSGRAPHS},
    **{f"{stack}-dropped.jsonl": [("orphan-root", "high", "GET", "http.client", None)] * 2 for stack in _JSGRAPHS},
    "langgraphjs-openinference-other-tenant-mct.jsonl": [_chosen("get_weather", "tool")] * 2,
    "openai-agentsjs-openinference-other-tenant-mct.jsonl": [_chosen("get_weather", "tool")] * 2,
    "openai-agentsjs-openinference-client-other-tenant-mct.jsonl": [_chosen("get_weather", "tool")] * 2,
    # LangSmith writes no span per run (nor the tool's arguments anywhere): nothing to read
    "langgraphjs-langsmith-other-tenant-mct.jsonl": [],
}


@pytest.mark.parametrize("path", JS_FRAMEWORKS, ids=lambda p: p.name)
def test_js_frameworks_tenants_keep_their_own_tags(path):
    """Two requests at once from the Python client (acme's and globex's; acme's twice in the
    -mct files): the Node.js agent tags its spans with the tag flowmap's runtime sent in the
    baggage, under the same key, never the other tenant's; no raw id of ours in the files.
    Genkit runs each flow as a trace of its own (a root, tagged from the baggage)."""
    traces, warnings = _load(path)
    assert warnings == []
    assert b"tenant-acme" not in path.read_bytes() and b"tenant-globex" not in path.read_bytes()
    acme, globex = tag_for(NODE_KEY, "tenant-acme"), tag_for(NODE_KEY, "tenant-globex")
    expected = [acme, acme] if path.name.endswith("-mct.jsonl") else [acme, globex]
    clients = [s for t in traces for s in t.spans.values() if s.service == "py-client" and s.kind == 3]
    servers = [s for t in traces for s in t.spans.values() if s.service != "py-client" and s.kind == 2]
    assert sorted(s.tenant for s in clients) == sorted(s.tenant for s in servers) == sorted(expected)
    assert all(s.attributes["flowmap.tenant.source"] == "baggage" for s in servers)
    for t in traces:
        tags = {s.attributes.get("flowmap.tenant") for s in t.spans.values()}
        assert len(tags - {None}) <= 1 and {s.key_id for s in t.spans.values() if s.tenant} <= {key_id_for(NODE_KEY)}


def test_the_text_counts_the_traces_a_path_was_seen_in_not_its_tool_calls(tmp_path, monkeypatch):
    """LangSmith's spans missing, each of the 2 traces has several HTTP calls as ends of its
    paths (the model's, the tool's, LangSmith's): a path's line counted them as traces ("7
    traces" in a file of 2)."""
    result = _check("langgraphjs-langsmith-nearmiss.jsonl", tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("flowmap: 2 traces, ")
    counts = [int(n) for n in re.findall(r"([\d,]+) traces?, e\.g\.", result.stdout)]
    assert counts and max(counts) == 2
    assert re.search(r"\d+ paths in 2 traces, e\.g\. ", result.stdout)


# -- Semantic Kernel's own spans (tests/fixtures/third_party/generators) -------------------

SEMANTIC_KERNEL = sorted(FIXTURES.glob("semantic-kernel-*.jsonl"))


# file -> what flowmap check --format json reports: (rule, severity, span, boundary, reached)
SK_FINDINGS = {
    "semantic-kernel-nearmiss.jsonl": [],
    "semantic-kernel-schema.jsonl": [],
    # each request's agent run and its text completion (a title) lost the tenant at the
    # request: high, both are boundaries (the agent's model and tool calls are below it)
    "semantic-kernel-dropped.jsonl": [
        *[_lost("invoke_agent weather_agent", None, "agent", "high")] * 2,
        *[_lost("text_completions gpt-3.5-turbo-instruct", None, "llm", "high")] * 2,
    ],
    "semantic-kernel-other-tenant-mct.jsonl": [_chosen("execute_tool weather-get_weather", "tool")] * 2,
}


def _assert_never_shown(name: str, raw: str, fmt: str, tmp_path, monkeypatch) -> None:
    """``raw`` is in fixture ``name`` and in none of its outputs: ``fmt`` text, sarif (check,
    which fails on the file) or html (the risk map: flowmap report exits 0 whatever it found)."""
    assert raw.encode() in (FIXTURES / name).read_bytes()
    if fmt == "html":
        monkeypatch.chdir(tmp_path)
        result = CliRunner().invoke(app, ["report", "--output", "r.html", str(FIXTURES / name)])
        assert result.exit_code == 0, result.output
        shown = (tmp_path / "r.html").read_text()
    else:
        result = _check(name, tmp_path, monkeypatch, "--format", fmt)
        assert result.exit_code == 1
        shown = result.output
    assert raw not in shown


@pytest.mark.parametrize("path", SEMANTIC_KERNEL, ids=lambda p: p.name)
def test_semantic_kernel_tenants_keep_their_own_tags(path):
    """Two requests at once on one event loop (acme's and globex's; acme's twice in the
    -mct file): with flowmap's runtime every span of a request, SK's and the tool's sqlite
    query, carries that request's tag and never the other's; no raw id in the file."""
    traces, warnings = _load(path)
    assert warnings == [] and len(traces) == 2
    assert b"tenant-acme" not in path.read_bytes() and b"tenant-globex" not in path.read_bytes()
    tags = [{s.attributes.get("flowmap.tenant") for s in t.spans.values()} for t in traces]
    if "dropped" in path.name:
        assert tags == [{"0123456789abcdef", None}] * 2
        return
    assert all(len(t) == 1 and None not in t for t in tags)
    assert (tags[0] == tags[1]) is path.name.endswith("-mct.jsonl")


# -- RabbitMQ and PostgreSQL: contrib's pika, aio-pika, psycopg2, asyncpg, psycopg ---------

RABBITMQ_POSTGRES = sorted(p for g in ("pika-*", "aio-pika-*", "psycopg-*") for p in FIXTURES.glob(f"{g}.jsonl"))
MQ_KEY = "mq-fixtures-key"  # the test key the fixtures' tags were made with (their generator)

# file -> what flowmap check --format json reports: (rule, severity, span, boundary, reached)
RABBITMQ_POSTGRES_FINDINGS = {
    "pika-nearmiss.jsonl": [],
    "aio-pika-nearmiss.jsonl": [],
    "psycopg-nearmiss.jsonl": [],
    "psycopg-stable-nearmiss.jsonl": [],
    # each request's message published with no tenant: high at the send (pika traces its
    # BlockingChannel's basic_publish and, below it, the Channel's: the outer one is found)
    "pika-dropped.jsonl": [_lost("orders send", None, "queue.publish", "high")] * 2,
    "aio-pika-dropped.jsonl": [_lost(",orders send", None, "queue.publish", "high")] * 2,
    "psycopg-dropped.jsonl": [_lost("SELECT", None, "db", "high"), _lost("INSERT", None, "db", "high")] * 2,
    "psycopg-stable-dropped.jsonl": [_lost("SELECT", None, "db", "high"), _lost("INSERT", None, "db", "high")] * 2,
    # traceparent only: the worker's receive lost the tenant (its query below it, untagged
    # too, is no second finding)
    "pika-downstream.jsonl": [_lost("orders receive", None, "queue.consume", "high")] * 2,
    "aio-pika-downstream.jsonl": [_lost("orders receive", None, "queue.consume", "high")] * 2,
    # published to a broker named outside the allow list: the guard kept the tag out of
    # the message's headers, so the worker lost it as in downstream
    "pika-external-broker.jsonl": [_lost("orders receive", None, "queue.consume", "high")] * 2,
    # pika's channel.consume() makes its receive span current without the message's
    # baggage: the receive is tagged, the worker's query below it is not
    "pika-consume-generator.jsonl": [_lost("INSERT", None, "db", "high")] * 2,
}


@pytest.mark.parametrize("path", [p for p in RABBITMQ_POSTGRES if not p.name.startswith("psycopg")], ids=lambda p: p.name)
def test_rabbitmq_consumers_are_children_of_the_send_in_another_service(path):
    """pika and aio-pika propagate through the message's headers and start the worker's
    CONSUMER span as a child of the PRODUCER span that sent it (no link), in the worker's
    own service; with flowmap's runtime on both sides each request's spans carry its own
    tenant's tag (the worker's from the message's baggage), made with the generator's key,
    and no raw id is in the file."""
    traces, warnings = _load(path)
    assert warnings == [] and len(traces) == 2
    assert b"tenant-acme" not in path.read_bytes() and b"tenant-globex" not in path.read_bytes()
    tags = []
    for t in traces:
        (receive,) = [s for s in t.spans.values() if s.kind == 5]
        send = t.spans[receive.parent_span_id]
        assert (send.kind, send.service, receive.service) == (4, "mq-api", "mq-worker")
        assert not receive.links
        assert receive.attributes["messaging.system"] == send.attributes["messaging.system"] == "rabbitmq"
        tags.append({s.attributes.get("flowmap.tenant") for s in t.spans.values()})
        if path.name.endswith("-nearmiss.jsonl"):
            assert receive.attributes["flowmap.tenant.source"] == "baggage"
    if path.name.endswith("-nearmiss.jsonl"):
        assert sorted(tags, key=sorted) == sorted(({tag_for(MQ_KEY, "tenant-acme")}, {tag_for(MQ_KEY, "tenant-globex")}),
                                                  key=sorted)


@pytest.mark.parametrize("path", [p for p in RABBITMQ_POSTGRES if p.name.endswith(
    ("-nearmiss.jsonl", "-consume-generator.jsonl", "-external-broker.jsonl")) and not p.name.startswith("psycopg")],
    ids=lambda p: p.name)
def test_rabbitmq_publishers_record_whether_the_tag_went_to_the_broker(path):
    """In flowmap's default configuration (baggage guard on) the contrib instrumentations'
    inject puts the tag in the message's headers for a broker the allow list accepts
    (127.0.0.1) and not for one it does not (``mq.example.com``, the same broker through
    another name): each PRODUCER span names its broker and records which
    (``flowmap.baggage.sent``), and the worker's spans carry the request's tag only when
    it went."""
    external = path.name.endswith("-external-broker.jsonl")
    traces, _ = _load(path)
    for t in traces:
        sends = [s for s in t.spans.values() if s.kind == 4]
        assert sends and {(s.attributes["net.peer.name"], s.attributes["flowmap.baggage.sent"]) for s in sends} == (
            {("mq.example.com", False)} if external else {("127.0.0.1", True)})
        (receive,) = [s for s in t.spans.values() if s.kind == 5]
        sent_tag = sends[0].attributes["flowmap.tenant"]
        assert receive.attributes.get("flowmap.tenant") == (None if external else sent_tag)


# -- vector stores, caches and search: OpenLLMetry's Chroma, LanceDB, Milvus; contrib's
# pymemcache and redis; OpenLIT's Chroma, Milvus, mem0 and qdrant; Elasticsearch's own
# spans and contrib's (generators vector_cache_traces.py and cache_search_traces.py) --

VEC_KEY = "vec-fixtures-key"  # the test key the fixtures' tags were made with (their generators)
VECTOR_CACHE = sorted(p for g in ("chromadb-*", "lancedb-*", "milvus-*", "pymemcache-*", "mem0-*", "redis-*-key",
                                  "elasticsearch-*", "qdrant-openlit-*")
                      for p in FIXTURES.glob(f"{g}.jsonl"))


def _leaked(span: str, boundary: str, where: str):
    return ("tenant-in-telemetry", "high", span, boundary, where)


# file -> what flowmap check --format json reports: (rule, severity, span, boundary, and
# reached, or where a raw id was found)
VECTOR_CACHE_FINDINGS = {
    **{f"{stack}-nearmiss.jsonl": [] for stack in (
        "chromadb-traceloop", "lancedb-traceloop", "milvus-traceloop", "pymemcache", "pymemcache-stable",
        "chromadb-openlit", "milvus-openlit", "mem0-openlit")},
    **{f"{stack}-dropped.jsonl": [_lost(write, None, kind, "high"), _lost(read, None, kind, "high")] * 2
       for stack, write, read, kind in (
           ("chromadb-traceloop", "chroma.upsert", "chroma.query", "vector"),
           ("lancedb-traceloop", "lancedb.add", "lancedb.search", "vector"),
           ("milvus-traceloop", "milvus.insert", "milvus.search", "vector"),
           ("pymemcache", "set", "get", "cache"),
           ("pymemcache-stable", "set", "get", "cache"),
           ("chromadb-openlit", "UPSERT notes", "GET notes", "vector"),
           ("milvus-openlit", "INSERT notes", "SEARCH notes", "vector"),
           # mem0's steps below each call ran without the tenant too: no second finding
           ("mem0-openlit", "memory add", "memory search", "memory"))},
    # the stores keyed by the tenant's raw id, which the instrumentations write as Python
    # writes a dict (str(dict)): Chroma the search's filter, Milvus the fields of its
    # results; and Milvus' filter, an expression, names the id as a literal
    "chromadb-traceloop-raw-filter.jsonl": [
        _lost("chroma.upsert", None, "vector", "high"), _lost("chroma.query", None, "vector", "high"),
        _leaked("chroma.query", "vector", "attribute 'db.chroma.query.where → tenant_id'")] * 2,
    "milvus-traceloop-raw-filter.jsonl": [
        _lost("milvus.insert", None, "vector", "high"), _lost("milvus.search", None, "vector", "high"),
        _leaked("milvus.search", "vector", "attribute 'db.milvus.search.filter → tenant_id', "
                "event 'db.search.result' attribute 'db.search.result.entity → tenant_id'"),
    ] * 2,
    # OpenLIT: Chroma's filter (db.filter, and in the summary of the call, db.query.summary,
    # with the metadata it upserts), the rows Milvus inserts (db.query.text), Milvus'
    # filter expression (db.filter)
    "chromadb-openlit-raw-filter.jsonl": [
        _lost("UPSERT notes", None, "vector", "high"), _lost("GET notes", None, "vector", "high"),
        _leaked("UPSERT notes", "vector", "attribute 'db.query.summary → tenant_id'"),
        _leaked("GET notes", "vector", "attribute 'db.filter → tenant_id', attribute 'db.query.summary → tenant_id'"),
    ] * 2,
    "milvus-openlit-raw-filter.jsonl": [
        _lost("INSERT notes", None, "vector", "high"), _lost("SEARCH notes", None, "vector", "high"),
        _leaked("INSERT notes", "vector", "attribute 'db.query.text → [].tenant_id'"),
        _leaked("SEARCH notes", "vector", "attribute 'db.filter → tenant_id'")] * 2,
    # caches keyed by the raw id after a tenant name (tenant:<id>:answer, cart/org_id=<id>):
    # pymemcache writes the keys in full; contrib's redis writes every argument as ?
    # (SET ? ? ? ?), so no key reaches its spans
    "pymemcache-raw-key.jsonl": [
        *[_lost(op, None, "cache", "high") for op in ("set", "get", "set", "delete")],
        _leaked("set", "cache", "attribute 'db.statement → tenant'"),
        _leaked("get", "cache", "attribute 'db.statement → tenant'"),
        _leaked("set", "cache", "attribute 'db.statement → org_id'"),
        _leaked("delete", "cache", "attribute 'db.statement → org_id'")] * 2,
    "redis-raw-key.jsonl": [_lost(op, None, "cache", "high") for op in ("SET", "GET", "HSET", "DEL")] * 2,
    # the same keys made with the tag, under flowmap's runtime
    **{f"{stack}-tagged-{what}.jsonl": [] for stack, what in (
        ("pymemcache", "key"), ("redis", "key"), ("elasticsearch", "filter"), ("elasticsearch-contrib", "filter"),
        ("qdrant-openlit", "filter"))},
    # a search filtered on tenant_id with the raw id: Elasticsearch's own spans record the
    # body as JSON (with its search query captured), contrib's with every value as ?
    # (nothing to find: its ? was taken for a raw id, in the tagged file too); OpenLIT
    # writes qdrant's upsert (its points, as Python writes them) and its scroll's filter
    # (a models.Filter: FieldCondition(key='tenant_id', match=MatchValue(value=…)))
    "elasticsearch-raw-filter.jsonl": [
        *[_lost(op, None, "db", "high") for op in ("index", "search", "search")],
        _leaked("search", "db", "attribute 'db.statement → query.term.tenant_id'"),
        _leaked("search", "db", "attribute 'db.statement → query.bool.filter[].term.tenant_id'")] * 2,
    "elasticsearch-contrib-raw-filter.jsonl": [
        _lost(op, None, "db", "high") for op in (
            "Elasticsearch/notes/_doc/:id", "Elasticsearch/<target>/_search", "Elasticsearch/<target>/_search")] * 2,
    "qdrant-openlit-raw-filter.jsonl": [
        _lost("UPSERT unknown", None, "vector", "high"), _lost("GET unknown", None, "vector", "high"),
        _leaked("UPSERT unknown", "vector", "attribute 'db.query.text → tenant_id'"),
        _leaked("GET unknown", "vector", "attribute 'db.query.text → tenant_id', attribute 'db.filter → tenant_id', "
                "attribute 'db.query.summary → tenant_id'")] * 2,
}


def test_every_vector_cache_fixture_has_its_findings_stated():
    assert sorted(p.name for p in VECTOR_CACHE) == sorted(VECTOR_CACHE_FINDINGS)


@pytest.mark.parametrize("name", sorted(VECTOR_CACHE_FINDINGS))
def test_vector_store_and_cache_findings_through_the_command_line(name, tmp_path, monkeypatch):
    """flowmap check --format json: exactly the stated findings, read with no warning; a
    raw id is found where the instrumentation wrote it (the finding's message names the
    attribute), and shown in no output."""
    _check_parameter_findings(name, VECTOR_CACHE_FINDINGS[name], tmp_path, monkeypatch)


def _raw(path: Path) -> bool:
    """Whether the app of a fixture keyed or filtered its store by the raw id (which
    contrib's redis and Elasticsearch instrumentations then write as ?)."""
    return "-raw-" in path.name


@pytest.mark.parametrize("name", sorted(p.name for p in VECTOR_CACHE if _raw(p) and b"tenant-acme" in p.read_bytes()))
def test_a_raw_tenant_id_written_as_a_python_literal_is_masked_in_the_risk_map(name, tmp_path, monkeypatch):
    """The raw ids are in the files (in Python literals, one also in Milvus' filter
    expression; in cache keys, JSON search bodies, qdrant's filter models): found, they
    are masked wherever the risk map would show them."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["report", "--output", "r.html", str(FIXTURES / name)])
    assert result.exit_code == 0, result.output
    shown = (tmp_path / "r.html").read_text()
    assert "tenant-acme" not in shown and "tenant-globex" not in shown


@pytest.mark.parametrize("path", [p for p in VECTOR_CACHE if not _raw(p) or p.name.startswith(("redis-", "elasticsearch-contrib-"))],
                         ids=lambda p: p.name)
def test_vector_stores_and_caches_are_keyed_by_the_tag_and_each_request_keeps_its_own(path):
    """The stores are keyed and filtered by the tenant's tag (their generator), or their
    instrumentation writes the keys and bodies' values as ?, so no raw id is in the
    file; with flowmap's runtime each request's spans carry its own tenant's tag."""
    traces, warnings = _load(path)
    assert warnings == [] and len(traces) == 2
    assert b"tenant-acme" not in path.read_bytes() and b"tenant-globex" not in path.read_bytes()
    if path.name.endswith(("-nearmiss.jsonl", "-tagged-key.jsonl", "-tagged-filter.jsonl")):
        tags = sorted(({s.attributes.get("flowmap.tenant") for s in t.spans.values()} for t in traces), key=sorted)
        assert tags == sorted([{tag_for(VEC_KEY, "tenant-acme")}, {tag_for(VEC_KEY, "tenant-globex")}], key=sorted)


# -- Redis as a queue: a stream (consumer group), a list (BLMOVE) and pub/sub, under
# contrib's redis instrumentation and flowmap's own (generators/redis_queue_traces.py) --

REDIS_QUEUE = sorted(FIXTURES.glob("redis-queue-*.jsonl"))
REDIS_QUEUE_KEY = "redis-queue-fixtures-key"  # the test key the fixtures' tags were made with
_JOB_CALLS = (("lookup_order", "tool"), ("SET", "cache"))  # what the worker does for a job (contrib)
_OWN_JOB_CALLS = (("lookup_order", "tool"), ("redis SET", "cache"))  # (flowmap's instrumentation)


def _orphan(span: str, boundary: str):
    return ("orphan-root", "high", span, boundary, None)


def _switched(span: str, boundary: str):
    return ("cross-tenant", "critical", span, boundary, None)


def _raw_queue_names(kinds: tuple[str, ...]) -> list[tuple]:
    """The raw id in each queue's name, which publish()/consume() name their spans for:
    redacted by the runtime, each span flagged (the stream's, the list's, the channel's)."""
    return [_leaked(f"{queue}:[flowmap:redacted]", kind, None) for queue in ("jobs", "tasks", "events")
            for kind in kinds] * 2


# file -> what flowmap check --format json reports: (rule, severity, span, boundary, reached)
REDIS_QUEUE_FINDINGS = {
    # each worker's idle polls (XREADGROUP … BLOCK, BLMOVE) and its XACKs are roots with no
    # tenant: a worker waits for every tenant at once, no finding (they were HIGH
    # orphan-roots); flowmap's instrumentation makes no span for the shared queues
    "redis-queue-contrib-nearmiss.jsonl": [],
    "redis-queue-flowmap-nearmiss.jsonl": [],
    # handled without consume(): the job's calls are roots with no tenant, six jobs (two
    # tenants, three queues), and the list's LREM after each job (no poll, no XACK)
    "redis-queue-contrib-dropped.jsonl": [_orphan(s, b) for s, b in _JOB_CALLS] * 6 + [_orphan("LREM", "cache")] * 2,
    # (the cache key made without a tenant is outside every namespace too)
    "redis-queue-flowmap-dropped.jsonl": [_orphan(s, b) for s, b in _OWN_JOB_CALLS] * 6
    + [("unscoped-query", "high", "redis SET", "cache", None)] * 6,
    # the first job's tenant bound for every later job: the other tenant's three jobs
    "redis-queue-contrib-cross-tenant.jsonl": [_switched(s, b) for s, b in _JOB_CALLS] * 3,
    "redis-queue-flowmap-cross-tenant.jsonl": [_switched(s, b) for s, b in _OWN_JOB_CALLS] * 3,
    "redis-queue-contrib-raw-id.jsonl": _raw_queue_names(("queue.publish", "queue.consume")),
    "redis-queue-flowmap-raw-id.jsonl": _raw_queue_names(("queue.publish", "queue.consume")),
    # the worker's cache key outside the tenant's namespace
    "redis-queue-flowmap-unscoped.jsonl": [("unscoped-query", "high", "redis SET", "cache", None)] * 6,
}


@pytest.mark.parametrize("name", ["redis-queue-contrib-nearmiss.jsonl", "redis-queue-contrib-raw-id.jsonl"])
def test_a_redis_workers_polls_are_in_the_file_and_judged_quietly(name, tmp_path, monkeypatch):
    """The contrib files hold the worker's idle polls as untagged root CLIENT spans
    (two XREADGROUPs and two BLMOVEs before the jobs, one each after); the text output
    and the risk map name no orphan for them, and show no raw id."""
    traces, _ = _load(FIXTURES / name)
    roots = [s.name for t in traces for s in t.spans.values() if s.parent_span_id is None and s.tenant is None
             and s.service == "redis-worker"]
    assert roots.count("XREADGROUP") >= 4 and roots.count("BLMOVE") >= 4 and roots.count("XACK") == 2
    result = _check(name, tmp_path, monkeypatch)
    assert "orphan-root" not in result.stdout and "tenant-acme" not in result.stdout
    result = CliRunner().invoke(app, ["report", "--output", "r.html", str(FIXTURES / name)])
    assert result.exit_code == 0, result.output
    shown = (tmp_path / "r.html").read_text()
    assert "tenant-acme" not in shown and "tenant-globex" not in shown


@pytest.mark.parametrize("path", REDIS_QUEUE, ids=lambda p: p.name)
def test_redis_queue_consumers_link_to_the_requests_publish(path):
    """Each job's consume() span (the stream's, the list's, the channel's) links to the
    publish() span of the request that sent it, in the API's service; with consume() the
    worker's spans carry the tag the message brought, made with the generator's key."""
    traces, warnings = _load(path)
    assert warnings == []
    spans = {s.span_id: s for t in traces for s in t.spans.values()}
    consumers = [s for s in spans.values() if s.boundary == "queue.consume"]
    assert len(consumers) == (0 if "-dropped" in path.name else 6)
    tags = {tag_for(REDIS_QUEUE_KEY, t) for t in ("tenant-acme", "tenant-globex")}
    for c in consumers:
        (link,) = c.links
        producer = spans[link.span_id]
        assert (producer.boundary, producer.service, c.service) == ("queue.publish", "redis-api", "redis-worker")
        assert c.tenant == producer.tenant and c.tenant in tags


# -- Node.js database and cache clients: ioredis, node-redis, pg (node/generate-db.mjs) ----

NODE_DB = sorted(FIXTURES.glob("node-db-*.jsonl"))
_NODE_CACHE_CALLS = ("set", "get", "redis-HSET", "redis-EXPIRE", "redis-DEL")  # ioredis', node-redis'
_PG_QUERY = "pg.query:SELECT postgres"  # pg names a query by its operation and database


def _node_db_leaks(text: str) -> list[tuple]:
    """The raw id in each cache key (ioredis' tenant:<id>:session, node-redis'
    cart/org_id=<id>) and in the inlined SQL literal, under ``text`` (db.statement, or
    db.query.text when stable)."""
    return [_leaked(span, "cache", f"attribute '{text} → {name}'") for span, name in (
        ("set", "tenant"), ("get", "tenant"), ("redis-HSET", "org_id"), ("redis-EXPIRE", "org_id"),
        ("redis-DEL", "org_id"))] + [_leaked(_PG_QUERY, "db", f"attribute '{text} → tenant_id'")]


# file -> what flowmap check --format json reports: (rule, severity, span, boundary, and
# reached, or where a raw id was found); two requests per file
NODE_DB_FINDINGS = {
    # node-redis' redis-connect root, at start-up, was an orphan-root (high) in every file
    "node-db-nearmiss.jsonl": [],
    "node-db-stable-nearmiss.jsonl": [],
    # each command and query, and pg's pool checkout, lost the tenant below the request
    **{f"node-db{stable}-dropped.jsonl": [
        *[_lost(op, None, "cache", "high") for op in _NODE_CACHE_CALLS],
        *[_lost(op, None, "db", "high") for op in ("pg-pool.connect", "pg-pool.connect", _PG_QUERY, _PG_QUERY)],
    ] * 2 for stable in ("", "-stable")},
    # the keys and the inlined literal: found (the parameterized query's text holds no id)
    "node-db-raw-key.jsonl": _node_db_leaks("db.statement") * 2,
    "node-db-stable-raw-key.jsonl": _node_db_leaks("db.query.text") * 2,
    # the raw id only as the parameter of WHERE tenant_id = $1, which pg records with
    # enhancedDatabaseReporting (was shown, unflagged, in the risk map)
    "node-db-raw-param.jsonl": [_leaked(_PG_QUERY, "db", "attribute 'db.postgresql.values → tenant_id'")] * 2,
}


def test_every_node_db_fixture_has_its_findings_stated():
    assert sorted(p.name for p in NODE_DB) == sorted(NODE_DB_FINDINGS)


@pytest.mark.parametrize("name", sorted(NODE_DB_FINDINGS))
def test_node_database_and_cache_clients_findings_through_the_command_line(name, tmp_path, monkeypatch):
    """flowmap check --format json: exactly the stated findings, read with no warning; a
    raw id is found where the instrumentation wrote it (the finding's message names the
    attribute), and the json output does not show it."""
    result = _check(name, tmp_path, monkeypatch, "--format", "json")
    expected = NODE_DB_FINDINGS[name]
    assert result.exit_code == (1 if expected else 0), result.output
    out = json.loads(result.stdout)
    assert out["warnings"] == []
    assert sorted((f["rule"], f["severity"], f["span_name"], f["boundary"],
                   f["reached"] if f["rule"] != "tenant-in-telemetry" else
                   f["message"].partition("identifier in ")[2].partition(" of '")[0])
                  for f in out["findings"]) == sorted(expected)
    assert "tenant-acme" not in result.stdout and "tenant-globex" not in result.stdout


@pytest.mark.parametrize("fmt", ["text", "sarif", "html"])
@pytest.mark.parametrize("name", sorted(n for n in NODE_DB_FINDINGS if "-raw-" in n))
def test_the_raw_ids_a_node_service_wrote_are_never_shown(name, fmt, tmp_path, monkeypatch):
    """The raw-key files hold both tenants' raw ids in cache keys and an SQL literal, the
    raw-param file as a query's recorded parameter: no output shows them, the risk map
    (flowmap report) included."""
    for raw in ("tenant-acme", "tenant-globex"):
        _assert_never_shown(name, raw, fmt, tmp_path, monkeypatch)


@pytest.mark.parametrize("path", NODE_DB, ids=lambda p: p.name)
def test_node_database_and_cache_clients_spans(path):
    """Two requests at once: each trace's commands and queries are CLIENT spans of the
    boundary their db.system names, below its server span, carrying its own tenant's tag
    (made with the test key) where the tagging processor runs; the cache keys and SQL
    name the tag, or the raw id in the raw files only. node-redis' connect at start-up is
    the one other trace."""
    traces, warnings = _load(path)
    assert warnings == []
    acme, globex = tag_for(NODE_KEY, "tenant-acme"), tag_for(NODE_KEY, "tenant-globex")
    requests = [t for t in traces if any(s.kind == 2 for s in t.spans.values())]
    (connect,) = [t for t in traces if t not in requests]
    assert [(s.name, s.boundary, s.tenant) for s in connect.spans.values()] == [("redis-connect", "cache", None)]
    roots = []
    for t in requests:
        (root,) = [s for s in t.spans.values() if s.parent_span_id is None]
        roots.append(root.tenant)
        calls = [s for s in t.spans.values() if s is not root]
        assert {(s.kind, s.boundary) for s in calls} == {(3, "cache"), (3, "db")}
        assert {s.tenant for s in calls} == ({None} if "dropped" in path.name else {root.tenant})
        key = {acme: "tenant-acme", globex: "tenant-globex"}[root.tenant] if "-raw-key" in path.name else root.tenant
        texts = " ".join(str(s.attributes.get("db.statement", s.attributes.get("db.query.text", ""))) for s in calls)
        assert f"tenant:{key}:session" in texts and f"cart/org_id={key}" in texts and f"tenant_id = '{key}'" in texts
    assert sorted(roots) == sorted([acme, globex])
    assert {s.key_id for t in requests for s in t.spans.values() if s.tenant is not None} == {key_id_for(NODE_KEY)}
    raw = b"tenant-acme" in path.read_bytes()
    assert raw is ("-raw-" in path.name) and raw is (b"tenant-globex" in path.read_bytes())


# -- Node.js and Python services over RabbitMQ (generators/node_rabbitmq_traces.py) -------

NODE_MQ = sorted(FIXTURES.glob("node-mq-*.jsonl"))
_ROUTED = "attribute 'messaging.rabbitmq.routing_key → tenant'"
# file -> what flowmap check --format json reports: (rule, severity, service, span,
# boundary, and the parent's service and name, or where a raw id was found); two requests
NODE_MQ_FINDINGS = {
    "node-mq-consumer-nearmiss.jsonl": [],
    "node-mq-producer-nearmiss.jsonl": [],
    # the Node.js worker's tool call made outside the message's context: a root with no
    # tenant, at the call (the tool service authenticated the token, below it)
    "node-mq-consumer-dropped.jsonl": [("orphan-root", "high", "node-mq-worker", "POST", "http.client", None)] * 2,
    # globex's message handled with acme's token: the tool service runs for acme below a
    # call that carried globex's tag
    "node-mq-consumer-cross-tenant.jsonl": [
        ("cross-tenant", "critical", "py-tools", "POST", "http.server", ("node-mq-worker", "POST"))],
    # amqplib loaded before the instrumentations: no publish span, no headers; the Python
    # worker's receive is an entry no tenant reached (its consume() refused the message)
    "node-mq-producer-dropped.jsonl": [
        ("unscoped-entry", "high", "py-worker", "orders receive", "queue.consume", None)] * 2,
    # the raw id in the routing key (the x-tenant-id header no instrumentation records)
    "node-mq-producer-raw-key.jsonl": [
        ("tenant-in-telemetry", "high", "node-mq-api", "publish tenant-events", "queue.publish", _ROUTED)] * 2,
    # acme's order published by globex's request (an outbox): the worker binds the order's
    # tenant below the consume the message's tag (globex's) bound
    "node-mq-producer-cross-tenant.jsonl": [
        ("cross-tenant", "critical", "py-worker", "save_order", "db", ("py-worker", "orders"))],
}
# each request's path from its HTTP entry through the queue to the last call: (service, boundary)
_NODE_MQ_PATHS = {
    "consumer": [("mq-api", "http.server"), ("mq-api", "queue.publish"), ("mq-api", "queue.publish"),
                 ("node-mq-worker", "queue.consume"), ("node-mq-worker", "http.client"),
                 ("py-tools", "http.server"), ("py-tools", "tool")],
    "producer": [("py-client", "http.server"), ("py-client", "http.client"), ("node-mq-api", "http.server"),
                 ("node-mq-api", "queue.publish"), ("py-worker", "queue.consume"), ("py-worker", "queue.consume"),
                 ("py-worker", "db")],
}


def test_every_node_mq_fixture_has_its_findings_stated():
    assert sorted(p.name for p in NODE_MQ) == sorted(NODE_MQ_FINDINGS)


@pytest.mark.parametrize("name", sorted(NODE_MQ_FINDINGS))
def test_node_and_python_services_over_rabbitmq_findings_through_the_command_line(name, tmp_path, monkeypatch):
    """flowmap check --format json: exactly the stated findings, read with no warning, each
    at the span the tenant was lost, switched or written at; the json never shows a raw id."""
    result = _check(name, tmp_path, monkeypatch, "--format", "json")
    expected = NODE_MQ_FINDINGS[name]
    assert result.exit_code == (1 if expected else 0), result.output
    out = json.loads(result.stdout)
    assert out["warnings"] == []
    assert sorted(
        (f["rule"], f["severity"], f["service"], f["span_name"], f["boundary"],
         f["message"].partition("identifier in ")[2].partition(" of '")[0] if f["rule"] == "tenant-in-telemetry"
         else (f["parent_service"], f["parent_name"]) if f["parent_span_id"] else None)
        for f in out["findings"]) == sorted(expected)
    assert "tenant-acme" not in result.stdout and "tenant-globex" not in result.stdout


@pytest.mark.parametrize("name", sorted(n for n, found in NODE_MQ_FINDINGS.items() if "dropped" not in n))
def test_the_path_through_the_queue_is_rebuilt_across_the_languages(name, tmp_path, monkeypatch):
    """Each request's path runs from its HTTP entry through the publish, the other
    language's consume or call, to the tool or database call at its end, in one trace
    (remote parents across three services); a cross-tenant breaks it where it was found.
    The producer's outbox published acme's order from globex's request: acme's path ends
    at the Node.js service, globex's trace holds both messages' paths."""
    out = json.loads(_check(name, tmp_path, monkeypatch, "--format", "json").stdout)
    spans = _spans(name)
    full = _NODE_MQ_PATHS[name.split("-")[2]]
    expected = [full, full] + ([full[:3]] if name == "node-mq-producer-cross-tenant.jsonl" else [])
    assert sorted([(spans[s].service, spans[s].boundary) for s in p["span_ids"]] for p in out["paths"]
                  ) == sorted(expected)
    assert all(len({spans[s].trace_id for s in p["span_ids"]}) == 1 for p in out["paths"])
    broken = [(p["break_rule"], spans[p["span_ids"][p["broken_at"]]].name)
              for p in out["paths"] if p["broken_at"] is not None]
    crossed = [(f[0], f[3]) for f in NODE_MQ_FINDINGS[name] if f[0] == "cross-tenant"]
    assert broken == crossed


@pytest.mark.parametrize("fmt", ["text", "sarif", "html"])
def test_the_raw_ids_a_node_producer_routed_by_are_never_shown(fmt, tmp_path, monkeypatch):
    """The routing keys name both tenants by their raw ids: no output shows them, the risk
    map included (it showed them, unflagged, in the publish spans' attributes)."""
    for raw in ("tenant-acme", "tenant-globex"):
        _assert_never_shown("node-mq-producer-raw-key.jsonl", raw, fmt, tmp_path, monkeypatch)


@pytest.mark.parametrize("path", NODE_MQ, ids=lambda p: p.name)
def test_node_and_python_services_tag_with_the_same_key(path):
    """The Python services (flowmap's runtime) and the Node.js ones (the tagging processor)
    tag with the same key: one flowmap.key_id wherever a span is tagged, each trace's
    request tagged with its tenant. amqplib writes its PRODUCER ``publish <exchange>`` and
    CONSUMER ``<queue> process`` spans; the raw ids are only in the raw-key file's
    routing keys."""
    traces, warnings = _load(path)
    assert warnings == []
    acme, globex = tag_for(NODE_KEY, "tenant-acme"), tag_for(NODE_KEY, "tenant-globex")
    spans = [s for t in traces for s in t.spans.values()]
    assert {s.key_id for s in spans if s.tenant is not None} == {key_id_for(NODE_KEY)}
    entries = [s for s in spans if s.parent_span_id is None and s.kind == 2]
    assert sorted(s.tenant for s in entries) == sorted([acme, globex])
    node = {(s.kind, s.boundary, s.name.split(" ")[0]) for s in spans if s.service.startswith("node-mq-")}
    if "-consumer-" in path.name:
        assert node == {(5, "queue.consume", "orders"), (3, "http.client", "POST")}
    elif "-dropped" in path.name:
        assert node == {(2, "http.server", "POST")}
    else:
        assert node == {(2, "http.server", "POST"), (4, "queue.publish", "publish")}
    routed = sorted(s.attributes.get("messaging.rabbitmq.routing_key", "") for s in spans if s.kind == 4)
    raw = b"tenant-acme" in path.read_bytes()
    assert raw is ("-raw-key" in path.name) and raw is (b"tenant-globex" in path.read_bytes())
    if raw:
        assert routed == ["tenant.tenant-acme.order.created", "tenant.tenant-globex.order.created"]


# -- query parameters contrib's DB-API instrumentations record (generators/db_parameter_traces.py)

DB_PARAMS = sorted(FIXTURES.glob("params-*.jsonl"))
_PARAMS_LEAK = _leaked("SELECT", "db", "attribute 'db.statement.parameters → tenant_id'")
_PARAMS_REDACTED = ("tenant-in-telemetry", "high", "SELECT", "db", "")
_PARAMS_QUERIES = {"sqlite3": 2, "psycopg2": 3, "psycopg": 3}  # a request's queries


def _params_findings(name: str) -> list[tuple]:
    """Two requests: each query with the raw id as a parameter compared with tenant_id
    (sqlite3: ? counted past one in a literal and one in a comment, :owner; psycopg2 and
    psycopg: %s past %%s, %(owner)s, = ANY(%s)'s elements) is found (the old code read
    none: the raw ids were shown, unflagged, in the risk map), below a request whose tag is
    made up (no runtime: each query lost it); the runtime redacted them itself; the tag is
    none."""
    queries = 2 * _PARAMS_QUERIES[name.split("-")[1]]
    if name.endswith("-raw.jsonl"):
        return [_PARAMS_LEAK, _lost("SELECT", None, "db", "high")] * queries
    return [_PARAMS_REDACTED] * queries if name.endswith("-redacted.jsonl") else []


def test_every_db_parameter_fixture_is_one_of_the_generators():
    assert sorted(p.name for p in DB_PARAMS) == sorted(
        [f"params-{c}-{m}.jsonl" for c in _PARAMS_QUERIES for m in ("raw", "tagged", "redacted")]
        + ["params-sqlite3-stable-raw.jsonl", "params-psycopg-stable-raw.jsonl"])


def _check_parameter_findings(name: str, expected: list[tuple], tmp_path, monkeypatch) -> None:
    """flowmap check --format json on fixture ``name``: exactly the ``expected`` findings
    (rule, severity, span, boundary, and ``reached`` or, for a raw id, where it was found:
    ``attribute 'db.statement.parameters → tenant_id'``), read with no warning; neither
    tenant's raw id shown. (Also the vector store and cache fixtures' check.)"""
    result = _check(name, tmp_path, monkeypatch, "--format", "json")
    assert result.exit_code == (1 if expected else 0), result.output
    out = json.loads(result.stdout)
    assert out["warnings"] == []
    assert sorted((f["rule"], f["severity"], f["span_name"], f["boundary"],
                   f["reached"] if f["rule"] != "tenant-in-telemetry" else
                   f["message"].partition("identifier in ")[2].partition(" of '")[0])
                  for f in out["findings"]) == sorted(expected)
    assert "tenant-acme" not in result.stdout and "tenant-globex" not in result.stdout


@pytest.mark.parametrize("path", DB_PARAMS, ids=lambda p: p.name)
def test_db_parameter_findings_through_the_command_line(path, tmp_path, monkeypatch):
    """flowmap check --format json: exactly the stated findings, read with no warning; the
    raw id a query passed as a parameter named where it is (db.statement.parameters →
    tenant_id), never shown."""
    _check_parameter_findings(path.name, _params_findings(path.name), tmp_path, monkeypatch)


@pytest.mark.parametrize("fmt", ["text", "sarif", "html"])
@pytest.mark.parametrize("name", sorted(p.name for p in DB_PARAMS if p.name.endswith("-raw.jsonl")))
def test_the_raw_ids_passed_as_query_parameters_are_never_shown(name, fmt, tmp_path, monkeypatch):
    """Both tenants' raw ids, only in the recorded parameters: no output shows them, the
    risk map included (it showed them: nothing had flagged them)."""
    for raw in ("tenant-acme", "tenant-globex"):
        _assert_never_shown(name, raw, fmt, tmp_path, monkeypatch)


@pytest.mark.parametrize("path", DB_PARAMS, ids=lambda p: p.name)
def test_db_parameter_spans_are_as_the_instrumentations_write_them(path):
    """What the findings rest on: each query a CLIENT span below its request, its text with
    placeholders only, its parameters in db.statement.parameters as str() of a tuple or a
    dict (contrib's dbapi, whatever the conventions' mode), the raw id, the tag or the
    runtime's placeholder in them."""
    traces, warnings = _load(path)
    assert warnings == [] and len(traces) == 2
    stable = "-stable-" in path.name
    for t in traces:
        queries = [s for s in t.spans.values() if s.kind == 3]  # CLIENT
        assert len(queries) == _PARAMS_QUERIES[path.name.split("-")[1]]
        for q in queries:
            text = q.attributes["db.query.text" if stable else "db.statement"]
            assert ("db.statement" in q.attributes) is not stable
            assert "tenant-" not in text and "tenant_id = " in text
            params = q.attributes["db.statement.parameters"]
            assert params[:1] in ("(", "{")
            if path.name.endswith("-raw.jsonl"):
                assert "'tenant-acme'" in params or "'tenant-globex'" in params
            elif path.name.endswith("-redacted.jsonl"):
                assert "[flowmap:redacted]" in params and "tenant-" not in params


# -- MySQL/MariaDB clients (tests/fixtures/third_party/generators/mysql_traces.py) -------

MYSQL = sorted(FIXTURES.glob("mysql-*.jsonl"))
MYSQL_CLIENTS = ("pymysql", "mysql", "mysqlclient", "sqlalchemy")
_MYSQL_PARAMS = "attribute 'db.statement.parameters → tenant_id'"


def _mysql_findings(name: str) -> list[tuple]:
    """Two requests, four queries each: an INSERT naming tenant_id third, a SELECT with
    ``%s = `tenant_id``` after a literal holding ``\\'`` and ``%%``, an executemany INSERT,
    a SELECT by name. With the raw id passed, each is found (the old code found only the
    last: it read no INSERT's columns and no comparison the other way round); lost below
    the request whose tag is made up (no runtime); the runtime redacted them itself; the
    tag is none. SQLAlchemy's spans (its own, with no parameters, and PyMySQL's below) and
    its pool's ``connect`` lose the tenant too where no runtime runs; its executemany's
    dicts name tenant_id as a key as well."""
    client, mode = name.removeprefix("mysql-").removesuffix(".jsonl").split("-")
    queries = [("INSERT", 4), ("SELECT", 4)]
    if mode == "nearmiss":
        return []
    if mode == "redacted":
        return [("tenant-in-telemetry", "high", span, "db", "") for span, n in queries for _ in range(n)]
    lost = [_lost(span, None, "db", "high") for span, n in queries for _ in range(n)]
    if client == "sqlalchemy":
        own = [_lost("INSERT notes", None, "db", "high")] * 4 + [_lost("SELECT notes", None, "db", "high")] * 4
        lost = own + [_lost("connect", None, "db", "high")] * 2 + (lost if mode == "raw" else [])
    if mode == "dropped":
        return lost
    if client == "sqlalchemy":
        keyed = _MYSQL_PARAMS + ", attribute 'db.statement.parameters → [].tenant_id'"
        return lost + [_leaked("INSERT", "db", _MYSQL_PARAMS)] * 2 + [_leaked("INSERT", "db", keyed)] * 2 + [
            _leaked("SELECT", "db", _MYSQL_PARAMS)] * 4
    return lost + [_leaked(span, "db", _MYSQL_PARAMS) for span, n in queries for _ in range(n)]


def test_every_mysql_fixture_is_one_of_the_generators():
    assert sorted(p.name for p in MYSQL) == sorted(
        f"mysql-{c}-{m}.jsonl" for c in MYSQL_CLIENTS for m in ("raw", "nearmiss", "redacted", "dropped"))


@pytest.mark.parametrize("path", MYSQL, ids=lambda p: p.name)
def test_mysql_findings_through_the_command_line(path, tmp_path, monkeypatch):
    """flowmap check --format json: exactly the stated findings, read with no warning; the
    raw ids passed as parameters named where they are, never shown."""
    _check_parameter_findings(path.name, _mysql_findings(path.name), tmp_path, monkeypatch)


@pytest.mark.parametrize("fmt", ["text", "sarif", "html"])
@pytest.mark.parametrize("name", sorted(p.name for p in MYSQL if p.name.endswith("-raw.jsonl")))
def test_the_raw_ids_passed_to_mysql_are_never_shown(name, fmt, tmp_path, monkeypatch):
    """Both tenants' raw ids, only in the recorded parameters: no output shows them, the
    risk map included (masking is by value: once flagged at any query, an id is hidden at
    every one)."""
    for raw in ("tenant-acme", "tenant-globex"):
        _assert_never_shown(name, raw, fmt, tmp_path, monkeypatch)


@pytest.mark.parametrize("path", MYSQL, ids=lambda p: p.name)
def test_mysql_spans_are_as_the_instrumentations_write_them(path):
    """What the findings rest on: each query a CLIENT span (db.system mysql) below its
    request, its text with %s / %(name)s placeholders and the sqlcommenter's comment
    (PyMySQL's, mysql-connector's and mysqlclient's spans; SQLAlchemy's own carry neither
    parameters nor comment), the parameters recorded only where dbapi instrumented the
    connection (str() of a tuple, a dict or executemany's list of them), the raw id, the
    tag or the runtime's placeholder in them and never in the text."""
    traces, warnings = _load(path)
    assert warnings == [] and len(traces) == 2
    client, mode = path.name.removeprefix("mysql-").removesuffix(".jsonl").split("-")
    raw = {"tenant-acme", "tenant-globex"}
    for t in traces:
        queries = [s for s in t.spans.values() if s.name in ("INSERT", "SELECT")  # (not the pool's set-up)
                   and "notes" in s.attributes["db.statement"]]
        assert len(queries) == (0 if client == "sqlalchemy" and mode == "dropped" else 4)
        for q in queries:
            text = q.attributes["db.statement"]
            assert q.kind == 3 and q.attributes["db.system"] == "mysql" and ("%s" in text or "%(" in text)
            assert "traceparent=" in text and not any(r in text for r in raw)
            params = q.attributes.get("db.statement.parameters")
            if mode == "dropped":
                assert params is None
                continue
            assert params[:1] in ("(", "{", "[")
            if mode == "raw":
                assert any(f"'{r}'" in params for r in raw)
            elif mode == "redacted":
                assert "[flowmap:redacted]" in params and not any(r in params for r in raw)
    assert any(r.encode() in path.read_bytes() for r in raw) is (mode == "raw")


# -- tenant filters on JSON metadata columns (tests/fixtures/third_party/generators/json_filter_traces.py)

JSON_FILTERS = sorted(FIXTURES.glob("jsonfilter-*.jsonl"))
_JSON_LITERAL = "attribute 'db.statement → tenant_id'"
# a request's queries holding the tenant's id, by where it is found, and its queries in all
_JSON_QUERIES = {
    "psycopg": ([_MYSQL_PARAMS] * 4 + [_JSON_LITERAL] * 3, 7),
    "psycopg2": ([_MYSQL_PARAMS] * 4 + [_JSON_LITERAL] * 3, 7),
    "sqlalchemy": ([_MYSQL_PARAMS] * 3 + ["attribute 'db.statement.parameters.tenant_id'"], 5),
    "pymysql": ([_MYSQL_PARAMS] * 2 + [_JSON_LITERAL] * 2, 4),
    "sqlite3": ([_MYSQL_PARAMS] * 2 + [_JSON_LITERAL], 3),
}


def _json_filter_findings(name: str) -> list[tuple]:
    """Two requests. Raw: every filter on the tenant's JSON key is found, its id a literal
    or a parameter (``->>'tenant_id'``, ``@>``, ``#>> '{tenant,id}'``, ``jsonb_path_match``'s
    variables, ``JSON_EXTRACT``, ``JSON_CONTAINS``, ``->> '$.tenant_id'``; SQLAlchemy's
    path a parameter too, its ``@>`` document a wrapped map); the filter on ``doc_id`` is
    none; every query lost the made-up tag (no runtime: SQLAlchemy's own spans and its
    pool's ``connect`` too). Near miss: the tag in the same filters, the raw-looking
    ``doc_id``, MariaDB's ``'v2\\' = tenant_id'`` literal: nothing."""
    client, mode = name.removeprefix("jsonfilter-").removesuffix(".jsonl").split("-")
    if mode == "nearmiss":
        return []
    found, queries = _JSON_QUERIES[client]
    lost = [_lost("SELECT", None, "db", "high")] * queries
    if client == "sqlalchemy":
        lost += [_lost("SELECT postgres", None, "db", "high")] * queries + [_lost("connect", None, "db", "high")]
    return ([_leaked("SELECT", "db", where) for where in found] + lost) * 2


def test_every_json_filter_fixture_is_one_of_the_generators():
    assert sorted(p.name for p in JSON_FILTERS) == sorted(
        f"jsonfilter-{c}-{m}.jsonl" for c in _JSON_QUERIES for m in ("raw", "nearmiss"))


@pytest.mark.parametrize("path", JSON_FILTERS, ids=lambda p: p.name)
def test_json_filter_findings_through_the_command_line(path, tmp_path, monkeypatch):
    """flowmap check --format json: the raw id in a JSON metadata filter named where it is
    (the old code found none in SQLAlchemy's, JSON_EXTRACT's, JSON_CONTAINS's, #>>'s,
    jsonb_path_match's or @> %s's, and took MariaDB's ``'v2\\'`` for an id), never shown."""
    _check_parameter_findings(path.name, _json_filter_findings(path.name), tmp_path, monkeypatch)


@pytest.mark.parametrize("fmt", ["text", "sarif", "html"])
@pytest.mark.parametrize("name", sorted(p.name for p in JSON_FILTERS if p.name.endswith("-raw.jsonl")))
def test_the_raw_ids_in_json_filters_are_never_shown(name, fmt, tmp_path, monkeypatch):
    """Both tenants' raw ids, only in the JSON filters: no output shows them, the risk map
    included (it showed SQLAlchemy's: nothing had flagged them)."""
    for raw in ("tenant-acme", "tenant-globex"):
        _assert_never_shown(name, raw, fmt, tmp_path, monkeypatch)


@pytest.mark.parametrize("path", JSON_FILTERS, ids=lambda p: p.name)
def test_json_filter_spans_are_as_the_instrumentations_write_them(path):
    """What the findings rest on: each query a CLIENT span of the request's trace, its
    filter on a JSON column in its text, the raw id (or the tag, never the raw id) in the
    text or the recorded parameters."""
    traces, warnings = _load(path)
    assert warnings == [] and len(traces) == 2
    queries = [s for t in traces for s in t.spans.values() if s.kind == 3 and "FROM docs" in str(s.attributes)]
    assert queries and all(any([op in s.attributes["db.statement"].lower() for op in ("json", "->>", "#>>", "@>")])
                           for s in queries)
    raw = b"tenant-acme" in path.read_bytes()
    assert raw is path.name.endswith("-raw.jsonl")


# -- OpenLIT's agent stacks (tests/fixtures/third_party/generators/openlit_agent_traces.py) --

OPENLIT_AGENTS = sorted(p for stack in ("openai", "langgraph", "openai-agents", "llama-index")
                        for p in FIXTURES.glob(f"{stack}-openlit-*.jsonl"))

# file -> what flowmap check --format json reports: (rule, severity, span, boundary, reached)
OPENLIT_AGENT_FINDINGS = {
    **{f"{stack}-openlit-nearmiss.jsonl": [] for stack in ("openai", "langgraph", "openai-agents", "llama-index")},
    # the app's own model calls and the tool's query, each lost at the request
    "openai-openlit-dropped.jsonl": [*[_lost("chat gpt-4o-mini", None, "llm", "high")] * 4,
                                     *[_lost("SELECT weather", None, "db", "high")] * 2],
    # a workflow run naming its workflow: an agent's (its agents, model and tool calls below)
    "langgraph-openlit-dropped.jsonl": [_lost("invoke_workflow weather_agent", None, "agent", "high")] * 2,
    "openai-agents-openlit-dropped.jsonl": [_lost("invoke_workflow Agent workflow", None, "agent", "high")] * 2,
    # LlamaIndex's text splitting and index building (OpenLIT's invoke_workflow, naming no
    # workflow) were agents, high: in-process steps, medium, the index's write to its
    # vector store named; its FunctionAgent writes no span, so its model calls hang from
    # the request
    "llama-index-openlit-dropped.jsonl": [
        *[_lost("invoke_workflow document_split", None)] * 2,
        *[_lost("invoke_workflow node_get_content", None)] * 2,
        *[_lost("invoke_workflow index_build", "vector 'fw-app invoke_workflow vector_store_add'")] * 2,
        *[_lost("chat gpt-4o-mini", None, "llm", "high")] * 4,
        *[_lost("SELECT weather", None, "db", "high")] * 2,
    ],
    # the tool's arguments: JSON on the OpenAI Agents SDK's tool span, written with
    # Python's str() on LangChain's (was found only at the model call, whose output holds
    # them too); no tool span for the plain client and LlamaIndex: the model call
    "openai-openlit-other-tenant-mct.jsonl": [_chosen("chat gpt-4o-mini", "llm")] * 2,
    "langgraph-openlit-other-tenant-mct.jsonl": [_chosen("execute_tool get_weather", "tool")] * 2,
    "openai-agents-openlit-other-tenant-mct.jsonl": [_chosen("execute_tool get_weather", "tool")] * 2,
    "llama-index-openlit-other-tenant-mct.jsonl": [_chosen("chat gpt-4o-mini", "llm")] * 2,
    # OpenLIT recording no messages: the model call's gen_ai.tool.args (LangChain's:
    # gen_ai.tool.call.arguments) is the only record of the arguments (was
    # tenant-in-telemetry, the model's choice not named)
    "openai-openlit-no-content-mct.jsonl": [_chosen("chat gpt-4o-mini", "llm")] * 2,
    "langgraph-openlit-no-content-mct.jsonl": [_chosen("chat gpt-4o-mini", "llm")] * 2,
}


@pytest.mark.parametrize("path", OPENLIT_AGENTS, ids=lambda p: p.name)
def test_openlit_agent_stacks_tenants_keep_their_own_tags(path):
    """One request after the other (acme's and globex's; acme's twice in the -mct files):
    with flowmap's runtime every span of a request carries its tenant's tag, made with the
    generator's key; no raw tenant id is in the files. (LangGraph and the OpenAI Agents
    SDK write a create_agent span when the agent is built, at start-up: no request's.)"""
    traces, warnings = _load(path)
    assert warnings == []
    assert b"tenant-acme" not in path.read_bytes() and b"tenant-globex" not in path.read_bytes()
    requests = [t for t in traces if any(s.name == "POST /chat" for s in t.spans.values())]
    assert len(requests) == 2 and all(
        s.name.startswith("create_agent") for t in traces if t not in requests for s in t.spans.values())
    tags = [{s.attributes.get("flowmap.tenant") for s in t.spans.values()} for t in requests]
    if "dropped" in path.name:
        assert tags == [{"0123456789abcdef", None}] * 2
        return
    acme, globex = tag_for("fw-fixtures-key", "tenant-acme"), tag_for("fw-fixtures-key", "tenant-globex")
    assert tags == ([{acme}, {acme}] if path.name.endswith("-mct.jsonl") else [{acme}, {globex}])


# -- DSPy, Haystack, LiteLLM, the Anthropic SDK (generators/agent_stack_traces.py) --------

AGENT_STACKS = sorted(p for stack in ("dspy", "haystack", "litellm", "anthropic") for p in FIXTURES.glob(f"{stack}-*.jsonl")
                      if "-fanout-" not in p.name)

# file -> what flowmap check --format json reports: (rule, severity, span, boundary, reached)
AGENT_STACK_FINDINGS = {
    **{f"{stack}-nearmiss.jsonl": [] for stack in (
        "dspy-openinference", "haystack-native", "haystack-openinference", "haystack-traceloop",
        "litellm-openinference", "litellm-traceloop", "anthropic-openinference", "anthropic-traceloop")},
    # the app's own model calls and the tool's query, each lost at the request (and the
    # Anthropic SDK's own span beside OpenLLMetry's)
    "litellm-openinference-dropped.jsonl": [*[_lost("completion", None, "llm", "high")] * 4,
                                            *[_lost("SELECT weather", None, "db", "high")] * 2],
    "litellm-traceloop-dropped.jsonl": [*[_lost("litellm.chat", None, "llm", "high")] * 4,
                                        *[_lost("SELECT weather", None, "db", "high")] * 2],
    "anthropic-openinference-dropped.jsonl": [*[_lost("messages.create", None, "llm", "high")] * 4,
                                              *[_lost("SELECT weather", None, "db", "high")] * 2],
    "anthropic-traceloop-dropped.jsonl": [*[_lost("anthropic.chat", None, "llm", "high")] * 4,
                                          *[_lost("anthropic.messages.create", None, "llm", "high")] * 4,
                                          *[_lost("SELECT weather", None, "db", "high")] * 2],
    # lost at the framework's outer run, a wrapper: medium, naming the call below
    "dspy-openinference-dropped.jsonl": [_lost("ReAct.forward", "tool 'fw-app get_weather.__call__'")] * 2,
    "haystack-native-dropped.jsonl": [_lost("haystack.pipeline.run", "vector 'fw-app haystack.component.run'")] * 2,
    "haystack-openinference-dropped.jsonl": [_lost("Pipeline.run", "vector 'fw-app InMemoryBM25Retriever.run'")] * 2,
    "haystack-traceloop-dropped.jsonl": [_lost("haystack_pipeline.workflow", "llm 'fw-app haystack.openai.chat'")] * 2,
    # the tool's arguments where a tool span records them (DSPy's, Haystack's own: was a
    # tenant-in-telemetry on five spans of each request, the tool call no boundary), else
    # the calls the model asked for
    "dspy-openinference-other-tenant-mct.jsonl": [_chosen("get_weather.__call__", "tool")] * 2,
    "haystack-native-other-tenant-mct.jsonl": [_chosen("haystack.agent.step.tool", "tool")] * 2,
    "litellm-openinference-other-tenant-mct.jsonl": [_chosen("completion", "llm")] * 2,
    "litellm-traceloop-other-tenant-mct.jsonl": [_chosen("litellm.chat", "llm")] * 2,
    "anthropic-openinference-other-tenant-mct.jsonl": [_chosen("messages.create", "llm")] * 2,
    "anthropic-traceloop-other-tenant-mct.jsonl": [_chosen("anthropic.chat", "llm")] * 2,
    # OpenInference traces neither the Agent's model calls nor its tool calls: the only
    # record is the Agent's CHAIN output, Python's repr of the messages (not read)
    "haystack-openinference-other-tenant-mct.jsonl": [],
    # OpenLLMetry's model spans record no tool call ('replies'): the only record is the
    # pipeline's output (traceloop.entity.output), a raw id in telemetry
    "haystack-traceloop-other-tenant-mct.jsonl": [("tenant-in-telemetry", "high", "haystack_pipeline.workflow", None,
                                                   None)] * 2,
}


@pytest.mark.parametrize("path", AGENT_STACKS, ids=lambda p: p.name)
def test_agent_stacks_tenants_keep_their_own_tags(path):
    """One request after the other (acme's and globex's; acme's twice in the -mct files):
    with flowmap's runtime every span of a request carries its tenant's tag, made with the
    generator's key; no raw tenant id is in the files."""
    traces, warnings = _load(path)
    assert warnings == [] and len(traces) == 2
    assert b"tenant-acme" not in path.read_bytes() and b"tenant-globex" not in path.read_bytes()
    tags = [{s.attributes.get("flowmap.tenant") for s in t.spans.values()} for t in traces]
    if "dropped" in path.name:
        assert tags == [{"0123456789abcdef", None}] * 2
        return
    acme, globex = tag_for("fw-fixtures-key", "tenant-acme"), tag_for("fw-fixtures-key", "tenant-globex")
    assert sorted(tags, key=sorted) == sorted([{acme}, {acme} if path.name.endswith("-mct.jsonl") else {globex}],
                                              key=sorted)


# -- work the frameworks fan out on their own threads, pools and event loops -------------
# (generators/concurrency_traces.py: two tenants' requests at once, flowmap's runtime)

FANOUT = sorted(FIXTURES.glob("*-fanout-*.jsonl"))

# file -> what flowmap check --format json reports: (rule, severity, span, boundary, reached)
FANOUT_FINDINGS = {
    # carried by the framework: LangChain's ContextThreadPoolExecutor (RunnableParallel,
    # batch) and LangGraph's executor (parallel edges, Send), asyncio's tasks, Haystack's
    # pipeline (asyncio.to_thread) and its Agent's tool pool (a copy of the context per call),
    # the OpenAI Agents SDK's parallel tool calls (run_sync's own event loop included);
    # DSPy's with the fix (its executor wrapped in flowmap.propagation.ContextExecutor)
    **{f"{stack}-{mode}.jsonl": [] for stack in (
        "langchain-openinference-fanout", "langgraph-openinference-fanout", "haystack-native-fanout",
        "openai-agents-openinference-fanout")
       for mode in ("nearmiss", "async-nearmiss")},
    "dspy-openinference-fanout-nearmiss.jsonl": [],
    # DSPy's ParallelExecutor (module.batch, dspy.Parallel) runs each item in a bare
    # ThreadPoolExecutor: every run is a root with no tenant, a wrapper (ReAct.forward, a
    # CHAIN: medium, per the contract) naming the tool that ran without one; never another
    # tenant's
    "dspy-openinference-fanout-thread-pool.jsonl": [
        ("orphan-root", "medium", "ReAct.forward", None, "tool 'fw-app get_weather.__call__'")] * 8,
    # the same under OpenTelemetry's threading instrumentation, which hands each task the
    # submitter's OpenTelemetry context, and flowmap's binding rides in it: carried
    "dspy-openinference-fanout-otel-threading.jsonl": [],
}

# file -> how many times each request ran the tenant's memory boundary (fanned out)
FANOUT_RECALLS = {"dspy": 4, "langchain": 3, "langgraph": 3, "haystack": 4, "openai": 2}


@pytest.mark.parametrize("path", FANOUT, ids=lambda p: p.name)
def test_fanned_out_work_keeps_its_requests_tenant_or_none(path):
    """Two tenants' requests at once, each fanning out: where the framework carries the
    context (or OpenTelemetry's threading instrumentation carries OpenTelemetry's, with
    flowmap's binding in it) every span of a request, the memory boundary in each branch
    included, carries its own tenant's tag and never the other's; where it drops it
    (DSPy's pool as it ships) the runs carry no tag at all (traces of their own), and the
    memory boundary refused there (MissingContextError: an error span, untagged) rather
    than read any tenant's note."""
    traces, warnings = _load(path)
    assert warnings == [] and b"tenant-acme" not in path.read_bytes() and b"tenant-globex" not in path.read_bytes()
    requests = [t for t in traces if any(s.name == "POST /chat" for s in t.spans.values())]
    recalls = FANOUT_RECALLS[path.name.split("-")[0]]
    acme, globex = tag_for("fw-fixtures-key", "tenant-acme"), tag_for("fw-fixtures-key", "tenant-globex")
    lost = [t for t in traces if t not in requests]
    if "nearmiss" in path.name or path.name.endswith("-otel-threading.jsonl"):
        tags = sorted(({s.attributes.get("flowmap.tenant") for s in t.spans.values()} for t in requests), key=sorted)
        memory = [[s for s in t.spans.values() if s.boundary == "memory"] for t in requests]
        assert lost == [] and tags == sorted([{acme}, {globex}], key=sorted)
        assert [len(m) for m in memory] == [recalls, recalls]
        return
    # the request spans keep their tenants; nothing the framework ran carries any tag
    entries = sorted(s.attributes.get("flowmap.tenant") for t in requests for s in t.spans.values()
                     if s.name == "POST /chat")
    spans = [s for t in traces for s in t.spans.values() if s.name != "POST /chat"]
    assert entries == sorted([acme, globex]) and not any(s.attributes.get("flowmap.tenant") for s in spans)
    assert len(lost) == 2 * recalls
    refused = [s for s in spans if s.boundary == "memory"]
    assert len(refused) == 2 * recalls and all(s.status_code == 2 for s in refused)


# -- CrewAI under OpenLIT and OpenLLMetry, Microsoft Agent Framework's own spans ----------
# (generators crewai_traces.py, agent_framework_traces.py: two tenants' requests at once)

CREW_AND_MAF = sorted(p for g in ("crewai-openlit-*", "crewai-traceloop-*", "agent-framework-*")
                      for p in FIXTURES.glob(f"{g}.jsonl"))
_TOOL_WORK_LOST = [_lost("SELECT weather", None, "db", "high"), _lost("memory.recall", None, "memory", "high")] * 2

# file -> what flowmap check --format json reports: (rule, severity, span, boundary, reached)
CREW_AND_MAF_FINDINGS = {
    **{f"{stack}-nearmiss.jsonl": [] for stack in ("crewai-openlit", "crewai-traceloop", "agent-framework")},
    # the tool's work on the app's worker pool, the trace context carried, the request's
    # context not: its query and its memory boundary (which refused) lost the tenant
    **{f"{stack}-dropped.jsonl": _TOOL_WORK_LOST for stack in ("crewai-openlit", "crewai-traceloop", "agent-framework")},
    # neither instrumentation writes a span for CrewAI 1.15's native tool calls: the
    # model's call, whose output holds the arguments, is flagged; the Agent Framework's
    # tool span records them (sensitive data on)
    "crewai-openlit-other-tenant-mct.jsonl": [_chosen("chat gpt-4o-mini", "llm")] * 2,
    "crewai-traceloop-other-tenant-mct.jsonl": [_chosen("openai.chat", "llm")] * 2,
    "agent-framework-other-tenant-mct.jsonl": [_chosen("execute_tool get_weather", "tool")] * 2,
}


@pytest.mark.parametrize("path", CREW_AND_MAF, ids=lambda p: p.name)
def test_crewai_and_agent_framework_tenants_run_at_once_keep_their_own_tags(path):
    """Two requests at once (asyncio.gather; CrewAI's kickoff_async runs each crew in a
    worker thread with a copy of the context): every span of a request carries its own
    tenant's tag, never the other's, but (dropped) the tool's work handed to the app's pool
    with the trace context only, which carries none: its query and its memory boundary,
    refused there (an error span). No raw id is in the files."""
    traces, warnings = _load(path)
    assert warnings == [] and len(traces) == 2
    assert b"tenant-acme" not in path.read_bytes() and b"tenant-globex" not in path.read_bytes()
    first, second = ([s for s in t.spans.values() if s.name == "POST /chat"][0] for t in traces)
    assert first.start_ns < second.end_ns and second.start_ns < first.end_ns  # at once
    acme, globex = tag_for("fw-fixtures-key", "tenant-acme"), tag_for("fw-fixtures-key", "tenant-globex")
    tags = sorted([{s.attributes.get("flowmap.tenant") for s in t.spans.values()} for t in traces], key=str)
    if "dropped" in path.name:
        untagged = sorted((s.name, s.status_code) for t in traces for s in t.spans.values() if s.tenant is None)
        assert untagged == sorted([("SELECT weather", 0), ("memory.recall", 2)] * 2)
        assert tags == sorted([{acme, None}, {globex, None}], key=str)
        return
    assert tags == sorted([{acme}, {acme} if path.name.endswith("-mct.jsonl") else {globex}], key=str)
    assert {s.name for t in traces for s in t.spans.values() if s.boundary == "memory"} == {"memory.recall"}


# what the crews' instructions said (OpenLLMetry's crewai.* names, OpenLIT's
# gen_ai.crewai.*): the agent's goal and backstory, the task's expected output
_CREW_INSTRUCTIONS = ("Answer questions about the weather.", "You look the weather up.", "The weather.")


@pytest.mark.parametrize("path", [p for p in CREW_AND_MAF if p.name.startswith("crewai-")], ids=lambda p: p.name)
def test_no_crew_instructions_or_results_in_the_risk_map(path):
    """OpenLLMetry writes the crew's agents and tasks (their goals, backstories and task
    descriptions formatted with the kickoff's inputs), its result and task outputs, and
    OpenLIT the crew's agents' goals, as attributes of their own: were shown in full."""
    shown = [(k, v) for t in build_report_data(analyze([path]), content=False).traces.values()
             for s in t.spans for k, v in s.attributes if k.startswith(("crewai.", "gen_ai.crewai."))]
    assert shown and not [(k, v) for k, v in shown for p in (*_CREW_INSTRUCTIONS, *_CONVERSATION) if p in v]


# -- Flask, Django, aiohttp.web and FastAPI streaming an answer token by token -----------
# (generators/web_streaming_traces.py: served on loopback, two tenants' clients at once)

WEB_STREAMING = sorted(FIXTURES.glob("web-*.jsonl"))
_STREAM_REFUSED = [("orphan-root", "high", "llm.token", "llm", None)] * 4

# file -> what flowmap check --format json reports: (rule, severity, span, boundary, reached)
WEB_STREAMING_FINDINGS = {
    # the body carried (flowmap.propagation.carry: Flask's Response, Django's middleware),
    # written inside the middleware's binding (aiohttp's StreamResponse, FastAPI under
    # TenantMiddleware)
    **{f"web-{framework}-nearmiss.jsonl": [] for framework in ("flask", "django", "aiohttp", "fastapi")},
    # an async body handed to flowmap.propagation.acarry: aiohttp's Response(body=...) and a
    # FastAPI endpoint that binds inside itself, written after the binding ended
    **{f"web-{framework}-carried.jsonl": [] for framework in ("aiohttp", "fastapi")},
    # iterated after the binding and the request's span ended (Flask's stream_with_context,
    # Django's StreamingHttpResponse, aiohttp's Response(body=<async generator>)): the first
    # model call of each stream refused, a root with no tenant
    **{f"web-{framework}-dropped.jsonl": _STREAM_REFUSED for framework in ("flask", "django", "aiohttp")},
    # FastAPI: bound inside the endpoint, which returns before the stream runs; the request's
    # span is still open: the refused model call and the ASGI receive below it lost the tenant
    "web-fastapi-dropped.jsonl": [_lost("llm.token", None, "llm", "high")] * 4
    + [_lost("GET /stream http receive", None)] * 4,
}


@pytest.mark.parametrize("path", WEB_STREAMING, ids=lambda p: p.name)
def test_web_frameworks_streams_run_for_their_requests_tenant_or_refuse(path):
    """Two tenants' clients at once, twice each (worker threads reused): every SERVER span
    carries its request's tenant (bound under the framework's own span), and so does every
    span below it (nearmiss; carried: every span that has a tag, FastAPI's ASGI send and
    receive spans, made outside the endpoint's binding, have none); a stream iterated
    after the binding ended (dropped) ran its model call with no tenant, refused (an
    error span), and never another request's."""
    traces, warnings = _load(path)
    assert warnings == [] and b"tenant-acme" not in path.read_bytes() and b"tenant-globex" not in path.read_bytes()
    acme, globex = tag_for("fw-fixtures-key", "tenant-acme"), tag_for("fw-fixtures-key", "tenant-globex")
    requests = [t for t in traces if any(s.kind == 2 for s in t.spans.values())]
    entries = sorted(s.attributes.get("flowmap.tenant") for t in requests for s in t.spans.values() if s.kind == 2)
    assert len(requests) == 8 and entries == sorted([acme, globex] * 4)
    tokens = [s for t in traces for s in t.spans.values() if s.name == "llm.token"]
    if "dropped" not in path.name:
        assert len(traces) == 8 and len(tokens) == 12 and all(s.tenant is not None for s in tokens)
        for t in traces:
            tags = {s.attributes.get("flowmap.tenant") for s in t.spans.values()}
            assert len(tags - {None}) == 1 and (None not in tags or "fastapi-carried" in path.name)
        return
    assert len(tokens) == 4 and all(s.status_code == 2 and s.tenant is None for s in tokens)

# -- the families whose findings are stated file by file --------------------------------

# family -> (its files, file -> the findings flowmap check states (see _check_states), the
# raw ids none of its outputs may show: the one the fake model chose, the tenants')
STATED = {
    "js-agents": (JS_AGENTS, JS_AGENT_FINDINGS, (MODEL_CHOSE,)),
    "js-frameworks": (JS_FRAMEWORKS, JS_FRAMEWORK_FINDINGS, (MODEL_CHOSE,)),
    "semantic-kernel": (SEMANTIC_KERNEL, SK_FINDINGS, (MODEL_CHOSE,)),
    "rabbitmq-postgres": (RABBITMQ_POSTGRES, RABBITMQ_POSTGRES_FINDINGS, ("tenant-acme",)),
    "redis-queue": (REDIS_QUEUE, REDIS_QUEUE_FINDINGS, ("tenant-acme",)),
    "openlit-agents": (OPENLIT_AGENTS, OPENLIT_AGENT_FINDINGS, (MODEL_CHOSE,)),
    "agent-stacks": (AGENT_STACKS, AGENT_STACK_FINDINGS, (MODEL_CHOSE,)),
    "fanout": (FANOUT, FANOUT_FINDINGS, ("tenant-acme", "tenant-globex")),
    "crewai-agent-framework": (CREW_AND_MAF, CREW_AND_MAF_FINDINGS, (MODEL_CHOSE,)),
    "web-streaming": (WEB_STREAMING, WEB_STREAMING_FINDINGS, ("tenant-acme", "tenant-globex")),
}
_STATED_FILES = [(family, name) for family, (_, found, _) in sorted(STATED.items()) for name in sorted(found)]


@pytest.mark.parametrize("family", sorted(STATED))
def test_every_file_of_a_family_has_its_findings_stated(family):
    files, found, _ = STATED[family]
    assert files and sorted(p.name for p in files) == sorted(found)


@pytest.mark.parametrize(("family", "name"), _STATED_FILES, ids=[name for _, name in _STATED_FILES])
def test_the_stated_findings_through_the_command_line(family, name, tmp_path, monkeypatch):
    """flowmap check --format json: exactly the stated findings, read with no warning, exit
    1 when one is high; a model-chosen tenant names the argument and never shows the id
    the model chose, nor any output a tenant's raw id."""
    _, found, hidden = STATED[family]
    _check_states(name, found[name], hidden, tmp_path, monkeypatch)


# the files where a fake model passed another tenant's raw id in a tool call, and it was found
_CHOSEN = [(f, n) for f, n in _STATED_FILES if n.endswith("-mct.jsonl") and STATED[f][1][n]]


@pytest.mark.parametrize("fmt", ["text", "sarif", "html"])
@pytest.mark.parametrize(("family", "name"), _CHOSEN, ids=[name for _, name in _CHOSEN])
def test_the_id_a_model_chose_is_never_shown(family, name, fmt, tmp_path, monkeypatch):
    """The -mct files hold it (the tool's arguments, the model's output, the next prompt;
    the workflow's and the pipeline's outputs): no output shows it, the risk map (flowmap
    report) included."""
    _assert_never_shown(name, MODEL_CHOSE, fmt, tmp_path, monkeypatch)
