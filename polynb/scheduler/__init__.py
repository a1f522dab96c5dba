"""The event-driven scheduler: statuses, events, trigger policies, conditions, hooks, retries, stop.

It knows nothing of notebooks or Kubernetes: it drives any :class:`~polynb.executors.base.Executor` and
records everything in the :class:`~polynb.store.Store`. Modules:

* ``engine`` — the public API (``Engine``) and the loop: one thread, one queue of messages.
* ``state`` — the engine's in-memory view (``EngineState``, ``DagState``; one ``run_state.RunState`` per
  run), shared explicitly by the collaborators below.
* ``statuses`` — every status change: store write, counts, listeners; a final status creates the hooks.
* ``hooks`` — which hooks a final status selects (trigger, conditions) and their runs; the default context.
* ``submission`` — create a pipeline's runs, compile an op when it may start, claim it, hand it to the
  ``submitter`` (``executor.submit`` on a small thread pool, so a process spawn never blocks the engine).
* ``evaluation`` — a DAG after its ops moved: start, skip or fail pending ops, fill slots, its own status.
* ``updates`` — what an executor's update does to a run; ``termination`` — timeouts and retries;
  ``stopping`` — stop an op, a DAG, everything at shutdown.
* ``recovery`` and ``ownership`` — a restarted engine adopts the runs of engines that are gone.
* Pure rules: ``readiness``/``triggers`` (when an op may start), ``dag_status``, ``timers`` (deadlines);
  ``tallies`` (incremental counts: an event re-evaluates only the downstream ops of the run that moved).
* ``sweeps`` (a ``matrix``: its trials, made lazily up to ``concurrency``, early stopping, its status),
  ``sweep_state`` and ``suggesters`` (what each matrix kind runs next; Optuna for tpe and bayes);
  ``joining`` (an op's ``joins`` select runs of the store when it compiles).
* ``schedules`` (a ``schedule``: a run per tick, on the engine's timers, ``maxRuns``/``endAt``/``dependsOnPast``,
  resumed by a restarted engine), ``schedule_state`` and ``schedule_ticks`` (when a cron, interval or datetime
  schedule ticks; croniter for cron).
* ``plan`` (storable specs), ``compiling`` (the seam to the compiler), ``events`` (what subscribers get),
  ``outbox`` (what waits for a turn's commit),
  ``control`` (``polynb stop`` from another process).

Decisions DESIGN §3 leaves open (each pinned by a test in ``tests/scheduler``):

* **Event-triggered op with other upstreams.** It starts when every event trigger has fired *and* the
  trigger policy over its non-event upstreams allows. An upstream named by an event trigger is not a
  policy upstream (even if a param also reads its ``globals.uuid``), unless it is listed in
  ``dependencies``: an explicit dependency is always waited for.
* **Missed event.** When the event's upstream is final without having emitted an awaited kind, the op is
  ``skipped`` (reason ``UpstreamEventNotEmitted``, message naming the upstream, its status, the kinds).
* ``all_failed``/``one_failed`` count ``failed`` only (not ``upstream_failed``), as Polyaxon does; a skipped
  upstream is not a success (``upstream_failed`` unless ``skipOnUpstreamSkip``).
* **Statuses of an op:** ``created`` → ``compiled`` (params resolved, conditions true, placed and
  rendered; waiting for a concurrency slot) → ``queued`` (claimed in the store, handed to the executor) →
  ``scheduled``/``starting``/``running`` (from the executor) → final. A DAG run goes ``created`` →
  ``compiled`` → ``running`` at submission, then final. Reasons are CamelCase words; messages are human.
* **DAG status** is decided once every non-service op is final (all ops if it has only services):
  failed > stopped > succeeded over the ops final at that moment. Services still running are left running
  until stopped or timed out (``polynb run --stop-services``); ``Engine.wait`` returns then, or when the
  services are final too with ``include_services=True``. Hooks never count.
* **Concurrency** counts ops claimed and not final (services included: they hold resources); retrying
  ops give their slot back while they wait for the next attempt.
* **Timeout** counts from the claim (``queued``), so an op stuck in scheduling also times out; the op
  goes ``stopping`` then ``failed`` (reason ``Timeout``) and is not retried. A DAG's own timeout counts
  from its ``running`` (across a restart too): the DAG is stopped like ``Engine.stop`` does (its ops end
  ``stopped``, reason ``DagStopped``) and ends ``failed``, reason ``Timeout``; it counts per attempt of the
  DAG. A DAG's own ``ttl`` is refused by the compiler ("not supported yet").
* **DAG retries.** A DAG's own ``maxRetries`` runs a failed DAG again as a whole: ``retrying`` (its
  services stopped), then, after the delay and once every op of the attempt is final, ``running`` with its
  ``attempt`` one more and a new set of op runs (same names, ``meta.dag_attempt``) in the same transaction.
  The earlier attempts' runs stay, final; ``Store.children`` (what every reader lists) gives the current
  attempt's. The DAG's hooks run after its final status only; stopped or timed out, it is not retried.
* **Retries.** A failed attempt with retries left becomes ``retrying`` (never ``failed``: final statuses
  are sticky), then is claimed and submitted again after a short delay; hooks run after the last try.
* **Stop.** A submitted op goes ``stopping`` → ``stopped`` (the executor confirms); a pending one goes
  ``stopping`` → ``stopped`` at once. Stopping a DAG stops every op; pending ops are never started.
* **Hooks** are created (``created``) in the store transaction that writes the main run's final status,
  after it (the log reads: the main run's final status and ``done``, then its hooks), so a crash cannot
  lose them; they are submitted once that transaction is committed. They are linked with ``hook_of`` and
  listed under the DAG (``dag_uuid``). Their ``hubRef`` is resolved at submission (a bad ref fails
  ``submit``) and stored, so a restarted engine without the notebook's registry still runs them. A hook
  whose conditions cannot be evaluated is a ``failed`` hook run with the message (written in the same
  transaction, so it never runs). ``wait`` waits for hooks by default.
* **Crash safety.** Every run's plan is in the store (``meta``). Each top-level run records its owning
  engine (host, pid, process start time, token); ``Engine.start`` adopts the unfinished runs whose owner
  is gone (or released them at a clean ``shutdown(stop_running=False)``). A run with a handle record is
  re-attached (the executor replays what it missed); a run claimed without a handle record may or may not
  have started (the handle is stored when the submitter thread reports back, after the spawn), so it is
  marked ``failed`` (reason ``SubmissionInterrupted``) and never resubmitted; a
  ``compiled`` run is compiled again (fresh ports) and queued; a ``retrying`` one gets its next attempt.
* **Submission** happens off the engine thread: the engine claims the run (``queued``, atomic) and queues
  it for a submitter thread. From the claim on the run holds its slot; executor updates that arrive before
  its handle is back are held and applied right after it, in order; a stop asked while the spawn is in
  flight is sent as soon as the executor has the run (a refused submission then ends ``stopped``, not
  ``failed``); a timeout still counts from the claim.
* **Turns.** The loop handles the messages queued at once (for up to ``engine.TURN_SECONDS``, or
  ``outbox.ACTING_SECONDS`` more once one leaves a run to submit or stop) as one turn whose writes are one
  store transaction. Nothing acts on a status before it is committed: submissions, stops, events to
  subscribers, waiters and the answers to API calls wait for the turn's commit (``outbox``), so an engine
  killed mid-turn leaves nothing that happened unrecorded. A message that starts many ops (a fan-out) commits
  what it wrote so far once a submission has waited ``ACTING_SECONDS``, between two ops, and hands those
  submissions over while it starts the rest; events still wait for the end of the turn. Progress updates of a
  run queued together (``starting`` then ``running``) are written as one store write (``Store.advance``), each
  status with its history row and event, in order.
* **Sweeps.** A matrix run (or a DAG's op with a ``matrix``) is final once every trial is: ``failed`` if any
  trial failed, else ``stopped`` if all were, else ``succeeded`` (Polyaxon's pipeline rule); early stopping
  starts no more trials and stops the running ones. Trials are ``dag_uuid``-children of the sweep, role
  ``trial``; the operation's hooks run for the sweep, the component's per trial. A restarted engine resumes
  a sweep: its running trials are re-attached, its suggester rebuilt from its trials (``Sweeps.resume``).
* **Shutdown** with ``stop_running`` stops everything and records the statuses before returning; no new
  hooks are started while shutting down. Either way no run is claimed any more, and the submissions
  already queued are made and their handles stored before the executors shut down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polynb.scheduler.engine import Engine
    from polynb.scheduler.events import EngineEvent

__all__ = ["Engine", "EngineEvent"]


def __getattr__(name: str) -> Any:
    # Bound on first use: ``polynb.scheduler.ownership`` (the CLI's ``ls``, ``attach``) must not load the engine.
    if name == "Engine":
        from polynb.scheduler.engine import Engine

        return Engine
    if name == "EngineEvent":
        from polynb.scheduler.events import EngineEvent

        return EngineEvent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
