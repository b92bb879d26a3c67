//! distest-reports: HTML run reports, SVG plots, comparisons and JUnit XML.
