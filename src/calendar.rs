//! Months and business days.
//!
//! 第25条 moves a notice deadline back to the previous business day when it
//! falls on a day the company is closed. The terms define business hours as
//! weekdays (※18); we take as closed: Saturdays, Sundays, Japanese national
//! holidays (a dated table below, 2023-2028, 振替休日 and 国民の休日 included)
//! and the year-end closure 12-29 to 01-03. Outside the table's years only
//! weekends and the year-end closure count: extend the table before 2029.

use chrono::{Datelike, Days, Months, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// A calendar month, `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct YearMonth {
    pub year: i32,
    pub month: u32,
}

impl TryFrom<String> for YearMonth {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        YearMonth::parse(&s).ok_or_else(|| format!("{s:?} is not a month (YYYY-MM)"))
    }
}

impl From<YearMonth> for String {
    fn from(m: YearMonth) -> String {
        m.to_string()
    }
}

impl std::fmt::Display for YearMonth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl YearMonth {
    pub fn parse(s: &str) -> Option<YearMonth> {
        let (y, m) = s.split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        let ym = YearMonth {
            year: y.parse().ok()?,
            month: m.parse().ok()?,
        };
        (1..=12).contains(&ym.month).then_some(ym)
    }

    pub fn of(d: NaiveDate) -> YearMonth {
        YearMonth {
            year: d.year(),
            month: d.month(),
        }
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("valid month")
    }

    pub fn last_day(self) -> NaiveDate {
        self.next().first_day() - Days::new(1)
    }

    pub fn next(self) -> YearMonth {
        self.plus_months(1)
    }

    pub fn prev(self) -> YearMonth {
        self.plus_months(-1)
    }

    pub fn plus_months(self, months: i32) -> YearMonth {
        let idx = self.year * 12 + (self.month as i32 - 1) + months;
        YearMonth {
            year: idx.div_euclid(12),
            month: (idx.rem_euclid(12) + 1) as u32,
        }
    }

    /// Whole months from `self` to `other` (negative if `other` is earlier).
    pub fn months_until(self, other: YearMonth) -> i32 {
        (other.year * 12 + other.month as i32) - (self.year * 12 + self.month as i32)
    }
}

/// Adds calendar months, clamping to the month's end (Jan 31 + 1 = Feb 28/29).
pub fn add_months(d: NaiveDate, months: u32) -> NaiveDate {
    d.checked_add_months(Months::new(months))
        .expect("date in range")
}

#[rustfmt::skip]
const HOLIDAYS: &[(i32, u32, u32)] = &[
    // 2023
    (2023, 1, 1), (2023, 1, 2), (2023, 1, 9), (2023, 2, 11), (2023, 2, 23), (2023, 3, 21),
    (2023, 4, 29), (2023, 5, 3), (2023, 5, 4), (2023, 5, 5), (2023, 7, 17), (2023, 8, 11),
    (2023, 9, 18), (2023, 9, 23), (2023, 10, 9), (2023, 11, 3), (2023, 11, 23),
    // 2024
    (2024, 1, 1), (2024, 1, 8), (2024, 2, 11), (2024, 2, 12), (2024, 2, 23), (2024, 3, 20),
    (2024, 4, 29), (2024, 5, 3), (2024, 5, 4), (2024, 5, 5), (2024, 5, 6), (2024, 7, 15),
    (2024, 8, 11), (2024, 8, 12), (2024, 9, 16), (2024, 9, 22), (2024, 9, 23), (2024, 10, 14),
    (2024, 11, 3), (2024, 11, 4), (2024, 11, 23),
    // 2025
    (2025, 1, 1), (2025, 1, 13), (2025, 2, 11), (2025, 2, 23), (2025, 2, 24), (2025, 3, 20),
    (2025, 4, 29), (2025, 5, 3), (2025, 5, 4), (2025, 5, 5), (2025, 5, 6), (2025, 7, 21),
    (2025, 8, 11), (2025, 9, 15), (2025, 9, 23), (2025, 10, 13), (2025, 11, 3), (2025, 11, 23),
    (2025, 11, 24),
    // 2026
    (2026, 1, 1), (2026, 1, 12), (2026, 2, 11), (2026, 2, 23), (2026, 3, 20), (2026, 4, 29),
    (2026, 5, 3), (2026, 5, 4), (2026, 5, 5), (2026, 5, 6), (2026, 7, 20), (2026, 8, 11),
    (2026, 9, 21), (2026, 9, 22), (2026, 9, 23), (2026, 10, 12), (2026, 11, 3), (2026, 11, 23),
    // 2027
    (2027, 1, 1), (2027, 1, 11), (2027, 2, 11), (2027, 2, 23), (2027, 3, 21), (2027, 3, 22),
    (2027, 4, 29), (2027, 5, 3), (2027, 5, 4), (2027, 5, 5), (2027, 7, 19), (2027, 8, 11),
    (2027, 9, 20), (2027, 9, 23), (2027, 10, 11), (2027, 11, 3), (2027, 11, 23),
    // 2028
    (2028, 1, 1), (2028, 1, 10), (2028, 2, 11), (2028, 2, 23), (2028, 3, 20), (2028, 4, 29),
    (2028, 5, 3), (2028, 5, 4), (2028, 5, 5), (2028, 7, 17), (2028, 8, 11), (2028, 9, 18),
    (2028, 9, 22), (2028, 10, 9), (2028, 11, 3), (2028, 11, 23),
];

/// Whether the company is open on `d`.
pub fn is_business_day(d: NaiveDate) -> bool {
    if matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
        return false;
    }
    let (m, day) = (d.month(), d.day());
    if (m == 12 && day >= 29) || (m == 1 && day <= 3) {
        return false;
    }
    !HOLIDAYS.contains(&(d.year(), m, day))
}

/// `d` itself if it is a business day, else the business day before it.
pub fn business_day_on_or_before(mut d: NaiveDate) -> NaiveDate {
    while !is_business_day(d) {
        d = d - Days::new(1);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn months() {
        let m = YearMonth::parse("2026-12").unwrap();
        assert_eq!(m.next().to_string(), "2027-01");
        assert_eq!(m.plus_months(-12).to_string(), "2025-12");
        assert_eq!(m.last_day(), d(2026, 12, 31));
        assert_eq!(
            YearMonth::parse("2027-02").unwrap().last_day(),
            d(2027, 2, 28)
        );
        assert_eq!(
            YearMonth::parse("2028-02").unwrap().last_day(),
            d(2028, 2, 29)
        );
        assert_eq!(m.months_until(YearMonth::parse("2027-03").unwrap()), 3);
        for bad in ["2026-13", "2026-00", "26-01", "2026/01", "2026-1"] {
            assert!(YearMonth::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn business_days() {
        // A plain Wednesday.
        assert!(is_business_day(d(2026, 11, 25)));
        // Weekend, holiday, 振替休日, 国民の休日, year-end closure.
        assert!(!is_business_day(d(2026, 11, 28)));
        assert!(!is_business_day(d(2026, 11, 23)));
        assert!(!is_business_day(d(2025, 11, 24)));
        assert!(!is_business_day(d(2026, 9, 22)));
        assert!(!is_business_day(d(2026, 12, 30)));
        assert!(!is_business_day(d(2027, 1, 2)));
        // 2026-05-31 is a Sunday: back to Friday 05-29.
        assert_eq!(business_day_on_or_before(d(2026, 5, 31)), d(2026, 5, 29));
        // 2026-12-31: year-end closure, back to Monday 12-28.
        assert_eq!(business_day_on_or_before(d(2026, 12, 31)), d(2026, 12, 28));
        // 2027-01-31 is a Sunday: back to Friday 01-29.
        assert_eq!(business_day_on_or_before(d(2027, 1, 31)), d(2027, 1, 29));
    }
}
