/**
 * The Replay view (docs/dashboard.md, "Replay a simulation"): a simulated run, read from the
 * JSON lines `synod sim --trace-out FILE.jsonl` writes, played back on a timeline. The file is
 * read in the browser (picked or dropped; nothing is uploaded), or fetched from the page's own
 * origin when `synod sim --open` serves it (`#replay=/dashboard/replay.jsonl`). The view talks
 * to no node, so it works when none is running.
 */
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Replay, ReplayFormatError, type ReplayMessage, type ReplayNodeState } from "../sim/replay-model.js";
import type { ReplayEvent } from "../sim/replay-trace.js";

/** Simulated time per real time. */
const SPEEDS = [0.01, 0.1, 0.25, 1, 4, 10, 100, 1000] as const;
/** A file bigger than this would not fit in a tab's memory once parsed. */
const FILE_BYTES_MAX = 256 * 1024 * 1024;
const IN_FLIGHT_DRAWN_MAX = 300;
const EVENTS_BEFORE = 18;
const EVENTS_AFTER = 8;
const VIEW = 440;
const NODE_RADIUS = 42;

function ms(micros: number): string {
  return `${(micros / 1000).toFixed(3)} ms`;
}

/** Where `#replay=PATH` asks to load from: a path on this origin only (the page's CSP allows no other). */
function replaySource(): string | null {
  const match = /^#replay=(\/[^#&]*)$/.exec(location.hash);
  return match?.[1] === undefined ? null : decodeURIComponent(match[1]);
}

export function ReplayView() {
  const [replay, setReplay] = useState<Replay | null>(null);
  const [name, setName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [at, setAt] = useState(0);
  const [playing, setPlaying] = useState(false);
  const [speed, setSpeed] = useState<number>(1);
  const [dragging, setDragging] = useState(false);
  // The play loop reads the cursor here: a state updater may run later than the frame.
  const atRef = useRef(0);
  atRef.current = at;

  const load = (text: string, from: string) => {
    try {
      const parsed = Replay.parse(text);
      setReplay(parsed);
      setName(from);
      setError(null);
      setAt(0);
      setPlaying(false);
    } catch (caught) {
      setError(caught instanceof ReplayFormatError ? `${from}: ${caught.message}` : `${from}: cannot read it (${(caught as Error).message})`);
    }
  };
  const loadFile = (file: File | undefined) => {
    if (file === undefined) return;
    if (file.size > FILE_BYTES_MAX) return setError(`${file.name} is ${(file.size / 1e6).toFixed(0)} MB; the page reads replays up to ${FILE_BYTES_MAX / 1024 / 1024} MiB`);
    file.text().then(
      (text) => load(text, file.name),
      (caught: Error) => setError(`${file.name}: ${caught.message}`),
    );
  };

  useEffect(() => {
    const source = replaySource();
    if (source === null) return;
    fetch(source)
      .then((answer) => (answer.ok ? answer.text() : Promise.reject(new Error(`HTTP ${answer.status}`))))
      .then(
        (text) => load(text, source),
        (caught: Error) => setError(`${source}: ${caught.message}`),
      );
  }, []);

  // Playing: virtual time moves `speed` times as fast as the wall clock, until the end.
  useEffect(() => {
    if (!playing || replay === null) return;
    let frame = 0;
    let previous = performance.now();
    const advance = (now: number) => {
      const elapsedMs = now - previous;
      previous = now;
      const next = Math.min(replay.endMicros, atRef.current + elapsedMs * 1000 * speed);
      atRef.current = next;
      setAt(next);
      if (next >= replay.endMicros) setPlaying(false);
      else frame = requestAnimationFrame(advance);
    };
    frame = requestAnimationFrame(advance);
    return () => cancelAnimationFrame(frame);
  }, [playing, replay, speed]);

  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setDragging(false);
    loadFile(event.dataTransfer?.files[0]);
  };

  return (
    <section
      class={`replay ${dragging ? "dragging" : ""}`}
      onDragOver={(event) => {
        event.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={onDrop}
    >
      <div class="replay-open">
        <label>
          Open a replay: <input id="replay-file" type="file" accept=".jsonl,application/x-ndjson" onChange={(event) => loadFile((event.target as HTMLInputElement).files?.[0])} />
        </label>
        <span class="muted">or drop it here · written by <code>synod sim --seed S --trace-out run.jsonl</code>; read here, never uploaded</span>
      </div>
      {error === null ? null : <p class="error replay-error">{error}</p>}
      {replay === null ? null : <Player replay={replay} name={name} at={at} setAt={setAt} playing={playing} setPlaying={setPlaying} speed={speed} setSpeed={setSpeed} />}
    </section>
  );
}

interface PlayerProps {
  readonly replay: Replay;
  readonly name: string;
  readonly at: number;
  readonly setAt: (at: number) => void;
  readonly playing: boolean;
  readonly setPlaying: (playing: boolean) => void;
  readonly speed: number;
  readonly setSpeed: (speed: number) => void;
}

function Player(props: PlayerProps) {
  const { replay, at } = props;
  const header = replay.header;
  const end = replay.endMicros;
  const count = replay.countAt(at);
  const state = useMemo(() => replay.stateAfter(count), [replay, count]);
  const ended = at >= end;
  const failedAt = header.verdict.passed ? null : header.verdict.atMicros;
  const percent = (t: number): string => `${end <= 0 ? 0 : Math.min(100, (100 * t) / end)}%`;
  const play = () => {
    if (ended) props.setAt(0);
    props.setPlaying(!props.playing);
  };
  return (
    <div class="replay-player" data-at={Math.round(at)} data-end={end} data-ended={ended ? "true" : "false"}>
      <Verdict replay={replay} name={props.name} />
      <div class="replay-controls">
        <button id="replay-play" onClick={play}>
          {props.playing ? "pause" : "play"}
        </button>
        <button id="replay-back" title="to the event before" onClick={() => props.setAt(count >= 2 ? (replay.events[count - 2] as ReplayEvent).t : 0)}>
          ◀ step
        </button>
        <button id="replay-step" title="to the next event" onClick={() => props.setAt(replay.nextEventAfter(at))}>
          step ▶
        </button>
        <label>
          speed{" "}
          <select id="replay-speed" value={String(props.speed)} onChange={(event) => props.setSpeed(Number((event.target as HTMLSelectElement).value))}>
            {SPEEDS.map((speed) => (
              <option key={speed} value={String(speed)}>
                {speed}×
              </option>
            ))}
          </select>
        </label>
        <span class="replay-time">
          <b id="replay-at">{ms(at)}</b> of {ms(end)} · event {count} of {replay.events.length}
        </span>
      </div>
      <div class="timeline">
        <input id="replay-slider" type="range" min={0} max={end} step={1} value={at} onInput={(event) => props.setAt(Number((event.target as HTMLInputElement).value))} />
        <span class="mark heal" style={{ left: percent(header.faultPhaseEndMicros) }} title={`heal at ${ms(header.faultPhaseEndMicros)}`} />
        {failedAt === null ? null : <button class="mark failure" style={{ left: percent(failedAt) }} title={`failed at ${ms(failedAt)}: to that moment`} onClick={() => props.setAt(failedAt)} />}
        {header.capped && header.cappedAtMicros !== null ? <span class="mark capped" style={{ left: percent(header.cappedAtMicros) }} title="the file stops here" /> : null}
      </div>
      <div class="replay-body">
        <Cluster nodes={state.nodes} cut={state.cut} flying={replay.inFlight(at, IN_FLIGHT_DRAWN_MAX)} />
        <EventList replay={replay} count={count} />
      </div>
    </div>
  );
}

function Verdict(props: { readonly replay: Replay; readonly name: string }) {
  const header = props.replay.header;
  const verdict = header.verdict;
  return (
    <div class={`verdict ${verdict.passed ? "passed" : "failed"}`} data-passed={verdict.passed ? "true" : "false"}>
      <div>
        <b>{verdict.passed ? "PASSED" : `FAILED: ${verdict.checker ?? "?"}`}</b> · seed {header.seed} · {header.protocol}
        {header.mutant === null ? "" : ` (mutant ${header.mutant})`} · scenario {header.scenario} · {header.nodes.length} nodes · {props.name}
      </div>
      {verdict.passed ? null : (
        <div class="verdict-message">
          at {ms(verdict.atMicros ?? 0)}: {verdict.message}
        </div>
      )}
      {header.capped ? <div class="warn">The file keeps the first {header.events} of the run's {header.eventsInRun} events; it stops at {ms(header.cappedAtMicros ?? 0)}.</div> : null}
      <div class="muted">reproduce: {header.reproduce}</div>
    </div>
  );
}

/** The nodes on a circle, the links cut between them, and the messages on the wire as dots. */
function Cluster(props: { readonly nodes: readonly ReplayNodeState[]; readonly cut: readonly (readonly [number, number])[]; readonly flying: readonly { readonly message: ReplayMessage; readonly progress: number }[] }) {
  const radius = VIEW / 2 - 60;
  const where = new Map(props.nodes.map((node, i) => {
    const angle = (2 * Math.PI * i) / props.nodes.length - Math.PI / 2;
    return [node.id, { x: VIEW / 2 + radius * Math.cos(angle), y: VIEW / 2 + radius * Math.sin(angle) }] as const;
  }));
  const at = (id: number) => where.get(id) ?? { x: VIEW / 2, y: VIEW / 2 };
  return (
    <svg class="replay-cluster" viewBox={`0 0 ${VIEW} ${VIEW}`} width={VIEW} height={VIEW}>
      {props.cut.map(([from, to]) => (
        <line key={`cut-${from}-${to}`} class="cut" x1={at(from).x} y1={at(from).y} x2={at(to).x} y2={at(to).y} />
      ))}
      {props.flying.map(({ message, progress }) => {
        // From the sender's edge to the receiver's, so a message is seen as soon as it leaves.
        const [a, b] = edges(at(message.from), at(message.to));
        const x = a.x + (b.x - a.x) * progress;
        const y = a.y + (b.y - a.y) * progress;
        return (
          <g key={message.id} class={`message fate-${message.fate}`}>
            <line class="path" x1={a.x} y1={a.y} x2={x} y2={y} />
            <circle cx={x} cy={y} r={4}>
              <title>
                {message.from} → {message.to}: {message.text}
              </title>
            </circle>
          </g>
        );
      })}
      {props.nodes.map((node) => {
        const p = at(node.id);
        const role = !node.up ? "down" : node.paused ? "paused" : node.role;
        return (
          <g key={node.id} class={`replay-node role-${role}`} data-node={node.id} data-role={role}>
            <circle cx={p.x} cy={p.y} r={NODE_RADIUS} />
            <text x={p.x} y={p.y - 16} class="name">
              node {node.id}
            </text>
            <text x={p.x} y={p.y - 2}>{role}</text>
            <text x={p.x} y={p.y + 12}>term {node.term}</text>
            <text x={p.x} y={p.y + 26}>
              commit {node.commit}
            </text>
          </g>
        );
      })}
    </svg>
  );
}

type Point = { readonly x: number; readonly y: number };

/** The line from `a` to `b`, shortened by a node's radius at both ends. */
function edges(a: Point, b: Point): [Point, Point] {
  const length = Math.hypot(b.x - a.x, b.y - a.y);
  if (length <= 2 * NODE_RADIUS) return [a, b];
  const dx = ((b.x - a.x) / length) * NODE_RADIUS;
  const dy = ((b.y - a.y) / length) * NODE_RADIUS;
  return [
    { x: a.x + dx, y: a.y + dy },
    { x: b.x - dx, y: b.y - dy },
  ];
}

function describe(event: ReplayEvent, replay: Replay): { readonly who: string; readonly text: string } {
  switch (event.e) {
    case "send":
      return { who: `node ${event.from}`, text: `-> ${event.to}: ${event.text}` };
    case "lost":
      return { who: `node ${event.from}`, text: `-> ${event.to}: ${event.kind} lost (${event.why})` };
    case "recv":
    case "drop": {
      const message = replay.message(event.id);
      return { who: message === undefined ? "?" : `node ${message.to}`, text: `${event.e === "recv" ? "<-" : "dropped"} ${message === undefined ? `message ${event.id}` : `${message.from}: ${message.kind}`}${event.e === "drop" ? ` (${event.why})` : ""}` };
    }
    case "state":
      return { who: `node ${event.node}`, text: `${event.role}, term ${event.term}, leader ${event.leader ?? "none"}, commit ${event.commit}, last ${event.last}` };
    case "node":
      return { who: `node ${event.node}`, text: event.what };
    case "partition":
      return { who: "nemesis", text: `partition: ${event.text}` };
    case "op":
      return { who: `client ${event.client}`, text: event.text };
    case "result":
      return { who: `client ${event.client}`, text: `${event.status}: ${event.text}` };
    case "note":
      return { who: event.actor, text: event.text };
  }
}

/** The events around the cursor, the last one that happened marked (and the checker's verdict, its last event, in red). */
function EventList(props: { readonly replay: Replay; readonly count: number }) {
  const list = useRef<HTMLOListElement>(null);
  const first = Math.max(0, props.count - EVENTS_BEFORE);
  const shown = props.replay.events.slice(first, props.count + EVENTS_AFTER);
  useEffect(() => {
    // The list scrolls itself, not the page, to keep the current event in view.
    const box = list.current;
    const current = box?.querySelector<HTMLElement>(".current");
    if (box !== null && box !== undefined && current !== null && current !== undefined) box.scrollTop = current.offsetTop - box.offsetTop - box.clientHeight / 2;
  }, [props.count]);
  return (
    <ol class="events replay-events" ref={list}>
      {shown.map((event, i) => {
        const index = first + i;
        const { who, text } = describe(event, props.replay);
        const failure = event.e === "note" && event.actor === "checker" ? "failure-here" : "";
        return (
          <li key={index} class={`replay-event e-${event.e} ${failure} ${index === props.count - 1 ? "current" : index >= props.count ? "future" : ""}`}>
            <time>{ms(event.t)}</time> <span class="kind">{who}</span> {text}
          </li>
        );
      })}
    </ol>
  );
}
