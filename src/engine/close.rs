//! The monthly close for billing: for a month, every contract's statement is
//! computed from its recorded revisions and reported to billing through the
//! outbox, exactly once per contract and month. Charges change with time
//! alone (the start month ends, option changes take effect, the minimum
//! period ends, annual fees fall due), so billing cannot wait for a job.
//!
//! - A contract's first statement of a month is version 1.
//! - A rerun sends nothing: the statement is compared with the recorded one.
//! - A contract revised after the close (a revision recorded since, with a
//!   higher number) whose statement for the month changed gets version n + 1,
//!   whose report says which version and report it replaces. A statement
//!   computed from older revisions never corrects a newer one.
//! - The store writes a version and its report in one transaction, keyed by
//!   (contract, month, version): two closes at once send it once.

use chrono::{Duration as ChronoDuration, NaiveDate, Utc};
use serde::Serialize;

use super::outbox;
use super::store::{ClosedStatement, NewOutboxItem, Store, StoreError};
use crate::billing::{self, BillingError, Statement};
use crate::calendar::YearMonth;
use crate::catalog::Catalog;
use crate::contract::Contract;

/// What one close of a month did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CloseSummary {
    pub month: String,
    /// Contracts looked at.
    pub contracts: usize,
    /// First statements recorded and reported (version 1).
    pub closed: usize,
    /// Corrections recorded and reported.
    pub corrected: usize,
    /// Already closed with the same statement (or by a close from newer revisions).
    pub unchanged: usize,
    /// Nothing to bill this month and nothing closed before (not requested
    /// yet, not started, ended before).
    pub skipped: usize,
    /// Contracts whose statement could not be computed, with why.
    pub failed: Vec<(String, String)>,
}

/// The money content a rerun compares: a change of in-force revision that
/// bills the same is no correction.
fn content(st: &Statement) -> String {
    serde_json::json!({
        "lines": st.lines, "subtotal": st.subtotal, "tax_rate": st.tax_rate,
        "tax": st.tax, "total": st.total, "notes": st.notes,
    })
    .to_string()
}

/// The outbox key of a statement version.
pub fn report_key(contract_id: &str, month: YearMonth, version: u32) -> String {
    format!("close:{contract_id}:{month}:v{version}")
}

/// Closes `month`: computes and records every contract's statement, reporting
/// new ones and corrections through the outbox.
pub async fn close_month(
    store: &dyn Store,
    catalog: &Catalog,
    month: YearMonth,
) -> Result<CloseSummary, StoreError> {
    let mut sum = CloseSummary {
        month: month.to_string(),
        ..Default::default()
    };
    for cid in store.contract_ids().await? {
        sum.contracts += 1;
        let mut history = Vec::new();
        let mut broken = None;
        for r in store.revisions(&cid).await? {
            match Contract::from_json(&r.payload) {
                Ok(c) => history.push(c),
                Err(e) => broken = Some(format!("revision {}: {e}", r.revision)),
            }
        }
        if let Some(e) = broken {
            sum.failed.push((cid, e));
            continue;
        }
        let st = match billing::statement(&history, catalog, month) {
            Ok(st) => st,
            Err(BillingError::NotYetRequested(_)) => {
                sum.skipped += 1;
                continue;
            }
            Err(e) => {
                sum.failed.push((cid, e.to_string()));
                continue;
            }
        };
        let basis = history.iter().map(|c| c.revision).max().unwrap_or(0);
        let customer_id = history
            .iter()
            .filter(|c| c.requested_on <= month.last_day())
            .max_by_key(|c| c.revision)
            .map(|c| c.customer.id.clone())
            .unwrap_or_default();
        let content = content(&st);
        let latest = store.latest_statement(&cid, &month.to_string()).await?;
        let (version, replaces) = match &latest {
            None if st.lines.is_empty() => {
                sum.skipped += 1;
                continue;
            }
            None => (1, None),
            Some(l) if l.content == content || basis <= l.based_on_revision => {
                sum.unchanged += 1;
                continue;
            }
            Some(l) => (l.version + 1, Some(l)),
        };
        let key = report_key(&cid, month, version);
        let body = outbox::monthly_statement_report(&st, &customer_id, version, replaces, basis);
        let row = ClosedStatement {
            contract_id: cid.clone(),
            month: month.to_string(),
            version,
            replaces: replaces.map(|l| l.version),
            customer_id,
            based_on_revision: basis,
            content,
            statement: serde_json::to_value(&st).expect("statements serialize"),
            total: st.total.to_string(),
            idempotency_key: key.clone(),
            closed_at: Utc::now(),
        };
        let report = NewOutboxItem {
            idempotency_key: key,
            contract_id: cid,
            body: serde_json::to_vec(&body).expect("reports serialize"),
        };
        if store.insert_statement(row, report).await? {
            if version == 1 {
                sum.closed += 1;
            } else {
                sum.corrected += 1;
            }
        } else {
            // Another close recorded this version first.
            sum.unchanged += 1;
        }
    }
    Ok(sum)
}

/// The month a close on `now` (UTC) closes: the previous month in Japan.
pub fn month_to_close(now: chrono::DateTime<Utc>) -> YearMonth {
    let jst: NaiveDate = (now + ChronoDuration::hours(9)).date_naive();
    YearMonth::of(jst).prev()
}

/// The latest version of each contract's statement of a month.
pub fn latest_versions(all: Vec<ClosedStatement>) -> Vec<ClosedStatement> {
    let mut out: Vec<ClosedStatement> = Vec::new();
    for s in all {
        match out.last_mut() {
            Some(last) if last.contract_id == s.contract_id => *last = s,
            _ => out.push(s),
        }
    }
    out
}

/// One line of the accounting export: a statement line, or its tax.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportLine {
    pub month: String,
    pub contract_id: String,
    pub customer_id: String,
    pub version: u32,
    pub replaces: Option<u32>,
    pub based_on_revision: u32,
    pub row: String,
    pub article: String,
    pub description: String,
    pub quantity: u32,
    pub unit_price: String,
    pub amount: String,
}

/// The export of a month for accounting: one line per statement line of each
/// contract's latest version, then its consumption tax (第36条).
pub fn export_lines(statements: &[ClosedStatement]) -> Result<Vec<ExportLine>, StoreError> {
    let mut out = Vec::new();
    for s in statements {
        let st: Statement = serde_json::from_value(s.statement.clone())
            .map_err(|e| StoreError::Corrupt(format!("statement of {}: {e}", s.contract_id)))?;
        let line =
            |row: &str, article: &str, description: &str, q: u32, unit: String, amount: String| {
                ExportLine {
                    month: s.month.clone(),
                    contract_id: s.contract_id.clone(),
                    customer_id: s.customer_id.clone(),
                    version: s.version,
                    replaces: s.replaces,
                    based_on_revision: s.based_on_revision,
                    row: row.into(),
                    article: article.into(),
                    description: description.into(),
                    quantity: q,
                    unit_price: unit,
                    amount,
                }
            };
        for l in &st.lines {
            out.push(line(
                &l.row,
                &l.article,
                &l.description,
                l.quantity,
                l.unit_price.to_string(),
                l.amount.to_string(),
            ));
        }
        out.push(line(
            "consumption_tax",
            "第36条",
            &format!("消費税 {}%", st.tax_rate * rust_decimal::Decimal::from(100)),
            1,
            st.tax.to_string(),
            st.tax.to_string(),
        ));
    }
    Ok(out)
}

/// RFC 4180 CSV of the export, with a header line.
pub fn export_csv(lines: &[ExportLine]) -> String {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }
    let mut out = String::from(
        "month,contract_id,customer_id,version,replaces,based_on_revision,row,article,description,quantity,unit_price,amount\r\n",
    );
    for l in lines {
        let cells = [
            l.month.clone(),
            l.contract_id.clone(),
            l.customer_id.clone(),
            l.version.to_string(),
            l.replaces.map(|v| v.to_string()).unwrap_or_default(),
            l.based_on_revision.to_string(),
            l.row.clone(),
            l.article.clone(),
            l.description.clone(),
            l.quantity.to_string(),
            l.unit_price.clone(),
            l.amount.clone(),
        ];
        let row: Vec<String> = cells.iter().map(|c| field(c)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_month_closed_is_the_previous_one_in_japan() {
        use chrono::TimeZone;
        // 2027-01-31 15:30 UTC is 2027-02-01 00:30 JST: January closes.
        let t = Utc.with_ymd_and_hms(2027, 1, 31, 15, 30, 0).unwrap();
        assert_eq!(month_to_close(t).to_string(), "2027-01");
        let t = Utc.with_ymd_and_hms(2027, 1, 31, 14, 30, 0).unwrap();
        assert_eq!(month_to_close(t).to_string(), "2026-12");
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let l = ExportLine {
            month: "2027-01".into(),
            contract_id: "C-1".into(),
            customer_id: "CU-1".into(),
            version: 2,
            replaces: Some(1),
            based_on_revision: 3,
            row: "service:www".into(),
            article: "第30条, 第5条".into(),
            description: "a \"quoted\" name".into(),
            quantity: 1,
            unit_price: "10000".into(),
            amount: "-433".into(),
        };
        let csv = export_csv(&[l]);
        let second = csv.lines().nth(1).unwrap();
        assert_eq!(
            second,
            "2027-01,C-1,CU-1,2,1,3,service:www,\"第30条, 第5条\",\"a \"\"quoted\"\" name\",1,10000,-433"
        );
    }
}
