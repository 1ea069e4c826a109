//! The terminal's `Reporter`: how an operation's phases, events and outcomes are shown, as
//! Pulumi shows them (or as one JSON document with `--json`).

use std::sync::{Mutex, MutexGuard};

use cairn_engine::{DeployOutcome, EngineEvent};
use cairn_ops::{Phase, PhaseStats, Reporter, StackOperation};
use cairn_program::Diagnostic;

use crate::commands::{self, render};
use crate::output;
use crate::progress::ProgressView;

/// A poisoned lock only means another thread panicked while drawing; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How a run is shown.
#[derive(Clone, Debug, Default)]
pub struct Display {
    pub json: bool,
    pub show_secrets: bool,
    pub show_sames: bool,
    pub diff: bool,
    /// `--yes`: approve without asking.
    pub yes: bool,
    /// `--non-interactive`: no live view, one line per event.
    pub non_interactive: bool,
}

/// The terminal's reporter: renders as `Display` says, with a live view on a terminal.
pub struct TerminalReporter {
    display: Display,
    /// The live view of the phase in progress, on a terminal.
    live: Mutex<Option<ProgressView>>,
    /// How many resources the real run will touch, from its preview: the live counter's total.
    total_hint: Mutex<Option<usize>>,
}

impl TerminalReporter {
    pub fn new(display: Display) -> TerminalReporter {
        TerminalReporter {
            display,
            live: Mutex::default(),
            total_hint: Mutex::default(),
        }
    }

    /// Whether approval is given up front (`--yes`).
    pub fn approves(&self) -> bool {
        self.display.yes
    }
}

impl Reporter for TerminalReporter {
    fn diagnostics(&self, diagnostics: &[Diagnostic]) {
        for diagnostic in diagnostics {
            output::diagnostic(diagnostic);
        }
    }

    fn warning(&self, message: &str) {
        output::warning(message);
    }

    fn phase_started(&self, operation: StackOperation, phase: Phase, stack: &str) {
        // With `--json`, one document per command: a preview that leads to an update prints
        // nothing of its own (unless it fails).
        if self.display.json {
            return;
        }
        match phase {
            Phase::Preview { .. } => {
                output::line(&format!("Previewing {} ({stack}):", operation.noun()));
            }
            Phase::Apply => output::line(&format!("{} ({stack}):", operation.doing())),
        }
        output::line("");
        // On a terminal progress is a live view redrawn in place (a preview's leaves nothing
        // behind); elsewhere one line per event, and none for a preview.
        if crate::progress::is_live(self.display.json, self.display.non_interactive) {
            let total_hint = *lock(&self.total_hint);
            let view = ProgressView::on_terminal(total_hint, !phase.is_preview());
            *lock(&self.live) = Some(view);
        }
    }

    fn event(&self, phase: Phase, event: &EngineEvent) {
        if let Some(view) = lock(&self.live).as_mut() {
            view.on_event(event);
        } else if !phase.is_preview() && !self.display.json {
            render_progress(event);
        }
    }

    fn phase_finished(&self, phase: Phase, outcome: &DeployOutcome, stats: &PhaseStats) {
        // The live rows leave the screen before the summary is printed.
        if let Some(view) = lock(&self.live).take() {
            view.finish();
        }
        if phase.is_preview() {
            *lock(&self.total_hint) = Some(crate::progress::total_of(outcome));
        }
        let is_shown = match phase {
            Phase::Preview { then_apply } => {
                !(then_apply && self.display.json) || outcome.has_failed()
            }
            Phase::Apply => true,
        };
        if is_shown {
            self.render_outcome(outcome, phase.is_preview(), stats);
        }
    }

    fn approve(&self, question: &str) -> Result<bool, String> {
        let approved =
            self.display.yes || commands::confirm(question).map_err(|error| error.to_string())?;
        if approved && !self.display.json {
            output::line("");
        }
        Ok(approved)
    }
}

impl TerminalReporter {
    fn render_outcome(&self, outcome: &DeployOutcome, is_preview: bool, stats: &PhaseStats) {
        if self.display.json {
            output::json(&render::outcome_json(
                outcome,
                is_preview,
                self.display.show_secrets,
                stats.bytes_written,
                stats.elapsed,
            ));
            return;
        }
        for row in &render::tree(outcome, is_preview, self.display.show_sames) {
            output::line(row);
        }
        if self.display.diff {
            let diff = render::diff_lines(outcome, self.display.show_secrets);
            if !diff.is_empty() {
                output::line("");
                for row in diff {
                    output::line(&row);
                }
            }
        }
        if outcome.has_failed() {
            output::line("");
            output::line("Diagnostics:");
            for step in outcome.failed_steps() {
                output::line(&format!(
                    "  {} ({}):",
                    render::display_type(&step.type_),
                    step.urn.name()
                ));
                output::line(&format!(
                    "    error: {}",
                    step.error
                        .as_ref()
                        .map(|error| error.message.as_str())
                        .unwrap_or_default()
                ));
            }
            for error in &outcome.program_errors {
                output::line(&format!("  error: {error}"));
            }
        }
        if !outcome.outputs.is_empty() {
            output::line("");
            output::line("Outputs:");
            let width = outcome.outputs.keys().map(String::len).max().unwrap_or(0);
            for (key, value) in &outcome.outputs {
                output::line(&format!(
                    "    {:<width$}: {}",
                    key,
                    render::display_value(value, self.display.show_secrets),
                    width = width
                ));
            }
        }
        output::line("");
        output::line(&render::summary_line(&outcome.changes, is_preview));
        if !is_preview {
            output::line("");
            output::line(&format!("Duration: {}s", stats.elapsed.as_secs()));
        }
        if outcome.cancelled {
            output::line("");
            output::line("The update was interrupted; the state records what finished.");
        }
    }
}

fn render_progress(event: &EngineEvent) {
    match event {
        EngineEvent::StepStarted { op, urn, type_ } => output::progress(&format!(
            " {:<2} {} {} {}",
            op.symbol(),
            render::display_type(type_),
            urn.name(),
            op.progressive()
        )),
        EngineEvent::StepFinished(record) => {
            let is_hidden = record.op == cairn_core::StepOp::Same
                || cairn_engine::is_default_provider(&record.urn);
            if is_hidden && record.error.is_none() {
                return;
            }
            let status = match &record.error {
                Some(error) => format!("{} failed: {error}", record.op.progressive()),
                None => record.op.past_tense().to_owned(),
            };
            output::progress(&format!(
                " {:<2} {} {} {status}",
                record.op.symbol(),
                render::display_type(&record.type_),
                record.urn.name()
            ));
        }
        EngineEvent::Warning(message) => output::warning(message),
        EngineEvent::Log {
            urn,
            severity,
            message,
        } => {
            if *severity >= cairn_provider::LogSeverity::Warning {
                output::progress(&format!(" {} {}: {message}", severity.as_str(), urn.name()));
            }
        }
    }
}
