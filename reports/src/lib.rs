//! distest-reports: HTML run reports, SVG plots, comparisons and JUnit XML.

pub mod analysis;
pub mod error;
pub mod faults;
pub mod html;
pub mod plot;
pub mod rundir;

pub mod charts;
pub mod lanes;
pub mod run_page;

pub use error::ReportError;
pub use run_page::render_run;
pub mod evidence;
pub mod timeline;
pub mod cycle;
pub mod logs;
