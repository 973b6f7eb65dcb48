//! Months and business days.
//!
//! 第25条 moves a notice deadline back to the previous business day when it
//! falls on a day the company is closed. The terms define business hours as
//! weekdays (※18); we take as closed: Saturdays, Sundays, Japanese public
//! holidays and the year-end closure 12-29 to 01-03.
//!
//! The holidays are computed by the rules of 国民の祝日に関する法律 as it
//! stands (fixed days, Happy Mondays, 春分・秋分 by the equinox formula,
//! 振替休日, 国民の休日, the 2019 enthronement days and the 2020/2021 Olympic
//! moves), for 2000-2099. Outside those years every function refuses with
//! [`CalendarError`] instead of silently counting only weekends. A future
//! amendment of the law needs a change here.

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

/// First and last year the business-day calendar knows. Outside them the
/// functions below refuse (`CalendarError`) rather than guess: the equinox
/// formula is only valid 1980-2099, and the holiday law's history is
/// written out from 2000 (Happy Monday) on.
pub const FIRST_YEAR: i32 = 2000;
pub const LAST_YEAR: i32 = 2099;

/// A date outside the years the calendar knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the business-day calendar covers {FIRST_YEAR}-{LAST_YEAR} (国民の祝日に関する法律 by its rules); {0} is outside it"
)]
pub struct CalendarError(pub i32);

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

/// The `n`th Monday of a month (Happy Monday, 祝日法 2条 as amended 1998/2001).
fn nth_monday(y: i32, m: u32, n: u32) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(y, m, Weekday::Mon, n as u8)
        .expect("a month has 4 Mondays")
}

/// 春分日 and 秋分日 of a year (1980-2099): the standard approximation of the
/// astronomical equinox in JST, floor(20.8431 + 0.242194 (Y - 1980) -
/// floor((Y - 1980) / 4)) (秋分: 23.2488), in integer micro-days so no float
/// rounding can move a day. The official day is fixed in the 官報 each
/// February for the next year; the formula agrees with every published day.
fn equinoxes(y: i32) -> (NaiveDate, NaiveDate) {
    let n = i64::from(y - 1980);
    let day = |base_micro: i64| (base_micro + 242_194 * n) / 1_000_000 - n.div_euclid(4);
    (
        ymd(y, 3, day(20_843_100) as u32),
        ymd(y, 9, day(23_248_800) as u32),
    )
}

/// The 国民の祝日 of a year (祝日法 2条), by rule, before substitute holidays
/// (振替休日) and in-between days (国民の休日) are added.
fn national_holidays(y: i32) -> Vec<(NaiveDate, &'static str)> {
    let (spring, autumn) = equinoxes(y);
    let mut h = vec![
        (ymd(y, 1, 1), "元日"),
        (nth_monday(y, 1, 2), "成人の日"),
        (ymd(y, 2, 11), "建国記念の日"),
        (spring, "春分の日"),
        (ymd(y, 5, 3), "憲法記念日"),
        (ymd(y, 5, 5), "こどもの日"),
        (autumn, "秋分の日"),
        (ymd(y, 11, 3), "文化の日"),
        (ymd(y, 11, 23), "勤労感謝の日"),
    ];
    // 天皇誕生日: 12-23 until 2018, none in 2019, 02-23 from 2020.
    if y <= 2018 {
        h.push((ymd(y, 12, 23), "天皇誕生日"));
    } else if y >= 2020 {
        h.push((ymd(y, 2, 23), "天皇誕生日"));
    }
    // 04-29: みどりの日 until 2006, 昭和の日 from 2007 (みどりの日 moved to 05-04).
    if y <= 2006 {
        h.push((ymd(y, 4, 29), "みどりの日"));
    } else {
        h.push((ymd(y, 4, 29), "昭和の日"));
        h.push((ymd(y, 5, 4), "みどりの日"));
    }
    // 海の日 and 敬老の日: fixed days until 2002, Happy Monday from 2003;
    // 海の日, スポーツの日 and 山の日 moved for the Olympic Games in 2020 and 2021
    // (東京オリンピック特別措置法).
    match y {
        2020 => h.extend([
            (ymd(y, 7, 23), "海の日"),
            (ymd(y, 7, 24), "スポーツの日"),
            (ymd(y, 8, 10), "山の日"),
        ]),
        2021 => h.extend([
            (ymd(y, 7, 22), "海の日"),
            (ymd(y, 7, 23), "スポーツの日"),
            (ymd(y, 8, 8), "山の日"),
        ]),
        _ => {
            h.push(if y <= 2002 {
                (ymd(y, 7, 20), "海の日")
            } else {
                (nth_monday(y, 7, 3), "海の日")
            });
            h.push((
                nth_monday(y, 10, 2),
                if y <= 2019 {
                    "体育の日"
                } else {
                    "スポーツの日"
                },
            ));
            if y >= 2016 {
                h.push((ymd(y, 8, 11), "山の日"));
            }
        }
    }
    h.push(if y <= 2002 {
        (ymd(y, 9, 15), "敬老の日")
    } else {
        (nth_monday(y, 9, 3), "敬老の日")
    });
    // 2019: 即位の日 and 即位礼正殿の儀 (天皇の即位の日及び即位礼正殿の儀の行われる日を休日とする法律).
    if y == 2019 {
        h.extend([
            (ymd(y, 5, 1), "即位の日"),
            (ymd(y, 10, 22), "即位礼正殿の儀"),
        ]);
    }
    h.sort();
    h
}

/// The holidays of a year: 国民の祝日, 振替休日 (祝日法 3条2項: a 祝日 on a
/// Sunday moves to the next day that is not a 祝日; until 2006 only to the
/// Monday) and 国民の休日 (3条3項: a day between two 祝日).
fn holidays(y: i32) -> Vec<(NaiveDate, &'static str)> {
    let base = national_holidays(y);
    let is_base = |d: NaiveDate| base.iter().any(|(h, _)| *h == d);
    let mut out = base.clone();
    for (d, _) in &base {
        if d.weekday() == Weekday::Sun {
            let mut s = *d + Days::new(1);
            if y >= 2007 {
                while is_base(s) {
                    s = s + Days::new(1);
                }
            }
            if !is_base(s) {
                out.push((s, "振替休日"));
            }
        }
    }
    for (d, _) in &base {
        let mid = *d + Days::new(1);
        if !is_base(mid) && is_base(mid + Days::new(1)) && mid.weekday() != Weekday::Sun {
            out.push((mid, "国民の休日"));
        }
    }
    out.sort();
    out.dedup_by_key(|(d, _)| *d);
    out
}

/// The name of the Japanese public holiday on `d`, if it is one.
pub fn holiday_name(d: NaiveDate) -> Result<Option<&'static str>, CalendarError> {
    let y = d.year();
    if !(FIRST_YEAR..=LAST_YEAR).contains(&y) {
        return Err(CalendarError(y));
    }
    Ok(holidays(y)
        .into_iter()
        .find(|(h, _)| *h == d)
        .map(|(_, n)| n))
}

/// Whether the company is open on `d`: not a Saturday, Sunday, public
/// holiday or day of the year-end closure (12-29 to 01-03).
pub fn is_business_day(d: NaiveDate) -> Result<bool, CalendarError> {
    let holiday = holiday_name(d)?.is_some();
    if matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
        return Ok(false);
    }
    let (m, day) = (d.month(), d.day());
    if (m == 12 && day >= 29) || (m == 1 && day <= 3) {
        return Ok(false);
    }
    Ok(!holiday)
}

/// `d` itself if it is a business day, else the business day before it.
pub fn business_day_on_or_before(mut d: NaiveDate) -> Result<NaiveDate, CalendarError> {
    while !is_business_day(d)? {
        d = d - Days::new(1);
    }
    Ok(d)
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
        let open = |x| is_business_day(x).unwrap();
        // A plain Wednesday.
        assert!(open(d(2026, 11, 25)));
        // Weekend, holiday, 振替休日, 国民の休日, year-end closure.
        assert!(!open(d(2026, 11, 28)));
        assert!(!open(d(2026, 11, 23)));
        assert!(!open(d(2025, 11, 24)));
        assert!(!open(d(2026, 9, 22)));
        assert!(!open(d(2026, 12, 30)));
        assert!(!open(d(2027, 1, 2)));
        let back = |x| business_day_on_or_before(x).unwrap();
        // 2026-05-31 is a Sunday: back to Friday 05-29.
        assert_eq!(back(d(2026, 5, 31)), d(2026, 5, 29));
        // 2026-12-31: year-end closure, back to Monday 12-28.
        assert_eq!(back(d(2026, 12, 31)), d(2026, 12, 28));
        // 2027-01-31 is a Sunday: back to Friday 01-29.
        assert_eq!(back(d(2027, 1, 31)), d(2027, 1, 29));
    }

    /// The holidays as the Cabinet Office published them (内閣府「国民の祝日」),
    /// 2023-2028, written out by hand: the rules must give exactly these.
    #[rustfmt::skip]
    const PUBLISHED: &[(i32, u32, u32)] = &[
        (2023, 1, 1), (2023, 1, 2), (2023, 1, 9), (2023, 2, 11), (2023, 2, 23), (2023, 3, 21),
        (2023, 4, 29), (2023, 5, 3), (2023, 5, 4), (2023, 5, 5), (2023, 7, 17), (2023, 8, 11),
        (2023, 9, 18), (2023, 9, 23), (2023, 10, 9), (2023, 11, 3), (2023, 11, 23),
        (2024, 1, 1), (2024, 1, 8), (2024, 2, 11), (2024, 2, 12), (2024, 2, 23), (2024, 3, 20),
        (2024, 4, 29), (2024, 5, 3), (2024, 5, 4), (2024, 5, 5), (2024, 5, 6), (2024, 7, 15),
        (2024, 8, 11), (2024, 8, 12), (2024, 9, 16), (2024, 9, 22), (2024, 9, 23), (2024, 10, 14),
        (2024, 11, 3), (2024, 11, 4), (2024, 11, 23),
        (2025, 1, 1), (2025, 1, 13), (2025, 2, 11), (2025, 2, 23), (2025, 2, 24), (2025, 3, 20),
        (2025, 4, 29), (2025, 5, 3), (2025, 5, 4), (2025, 5, 5), (2025, 5, 6), (2025, 7, 21),
        (2025, 8, 11), (2025, 9, 15), (2025, 9, 23), (2025, 10, 13), (2025, 11, 3), (2025, 11, 23),
        (2025, 11, 24),
        (2026, 1, 1), (2026, 1, 12), (2026, 2, 11), (2026, 2, 23), (2026, 3, 20), (2026, 4, 29),
        (2026, 5, 3), (2026, 5, 4), (2026, 5, 5), (2026, 5, 6), (2026, 7, 20), (2026, 8, 11),
        (2026, 9, 21), (2026, 9, 22), (2026, 9, 23), (2026, 10, 12), (2026, 11, 3), (2026, 11, 23),
        (2027, 1, 1), (2027, 1, 11), (2027, 2, 11), (2027, 2, 23), (2027, 3, 21), (2027, 3, 22),
        (2027, 4, 29), (2027, 5, 3), (2027, 5, 4), (2027, 5, 5), (2027, 7, 19), (2027, 8, 11),
        (2027, 9, 20), (2027, 9, 23), (2027, 10, 11), (2027, 11, 3), (2027, 11, 23),
        (2028, 1, 1), (2028, 1, 10), (2028, 2, 11), (2028, 2, 23), (2028, 3, 20), (2028, 4, 29),
        (2028, 5, 3), (2028, 5, 4), (2028, 5, 5), (2028, 7, 17), (2028, 8, 11), (2028, 9, 18),
        (2028, 9, 22), (2028, 10, 9), (2028, 11, 3), (2028, 11, 23),
    ];

    #[test]
    fn the_rules_give_the_published_holidays_2023_to_2028() {
        for y in 2023..=2028 {
            let want: Vec<NaiveDate> = PUBLISHED
                .iter()
                .filter(|h| h.0 == y)
                .map(|&(y, m, day)| d(y, m, day))
                .collect();
            let got: Vec<NaiveDate> = holidays(y).into_iter().map(|(h, _)| h).collect();
            assert_eq!(got, want, "{y}");
        }
    }

    #[test]
    fn special_years_and_old_rules() {
        let name = |y, m, day| holiday_name(d(y, m, day)).unwrap();
        // 2019: 即位の日 05-01 with 国民の休日 04-30 and 05-02; 即位礼正殿の儀 10-22;
        // no 天皇誕生日.
        assert_eq!(name(2019, 5, 1), Some("即位の日"));
        assert_eq!(name(2019, 4, 30), Some("国民の休日"));
        assert_eq!(name(2019, 5, 2), Some("国民の休日"));
        assert_eq!(name(2019, 10, 22), Some("即位礼正殿の儀"));
        assert_eq!(name(2019, 12, 23), None);
        assert_eq!(name(2018, 12, 23), Some("天皇誕生日"));
        // 2020 and 2021 Olympic moves; 2021-08-08 (Sunday) moves to 08-09.
        assert_eq!(name(2020, 7, 24), Some("スポーツの日"));
        assert_eq!(name(2020, 10, 12), None);
        assert_eq!(name(2021, 8, 9), Some("振替休日"));
        assert_eq!(name(2021, 7, 19), None);
        // Before 2007 a Sunday holiday moved to the Monday only; 2006-05-04
        // was a 国民の休日 between 憲法記念日 and こどもの日.
        assert_eq!(name(2006, 5, 4), Some("国民の休日"));
        assert_eq!(name(2006, 4, 29), Some("みどりの日"));
        // 2002: 海の日 was 07-20, 敬老の日 09-15 (a Sunday: 09-16 振替休日).
        assert_eq!(name(2002, 7, 20), Some("海の日"));
        assert_eq!(name(2002, 9, 16), Some("振替休日"));
        // 2015-09-22: a 国民の休日 between 敬老の日 (09-21) and 秋分の日 (09-23).
        assert_eq!(name(2015, 9, 22), Some("国民の休日"));
        // 2008-05-04 (みどりの日) was a Sunday and 05-05 is こどもの日, so the
        // substitute goes to Tuesday 05-06 (the 2007 rule).
        assert_eq!(name(2008, 5, 6), Some("振替休日"));
    }

    #[test]
    fn equinoxes_by_the_formula() {
        // Published (国立天文台 暦要項) and predicted days.
        for (y, spring, autumn) in [
            (2000, 20, 23),
            (2012, 20, 22),
            (2016, 20, 22),
            (2024, 20, 22),
            (2027, 21, 23),
            (2030, 20, 23),
            (2044, 20, 22),
            (2099, 20, 23),
        ] {
            assert_eq!(equinoxes(y), (d(y, 3, spring), d(y, 9, autumn)), "{y}");
        }
    }

    #[test]
    fn no_silent_guess_outside_the_known_years() {
        // The old table stopped at 2028 and then counted only weekends; 2029
        // and later now follow the rules: 2029-03-20 is 春分の日 (a Tuesday).
        assert_eq!(holiday_name(d(2029, 3, 20)), Ok(Some("春分の日")));
        assert_eq!(is_business_day(d(2029, 3, 20)), Ok(false));
        assert_eq!(is_business_day(d(2100, 3, 3)), Err(CalendarError(2100)));
        assert_eq!(is_business_day(d(1999, 3, 3)), Err(CalendarError(1999)));
        assert_eq!(
            business_day_on_or_before(d(2000, 1, 1)),
            Err(CalendarError(1999))
        );
    }
}
