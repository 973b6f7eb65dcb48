//! The contract document: the full desired state of one service contract at
//! one revision, as the contract system sends it (JSON, see
//! `docs/contract.schema.json` and `docs/contract-format.md`).
//!
//! Parsing is strict (`deny_unknown_fields` everywhere): a field we do not
//! know is a field whose meaning we would silently ignore. Domain names are
//! converted to their IDNA A-label form here, once, so look-alike Unicode never
//! travels further.

mod entitlements;

use std::net::IpAddr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use entitlements::Entitlements;

/// Largest contract document accepted anywhere.
pub const MAX_CONTRACT_BYTES: usize = 1024 * 1024;

/// Highest revision number accepted: a revision a day for 2,700 years.
/// Revisions strictly increase and are never taken back, so the cap leaves
/// room after any revision a contract system will really send, where
/// `u32::MAX` would be a last revision after which none could follow.
pub const MAX_REVISION: u32 = 1_000_000;

/// The furthest a revision may go past the latest recorded one (rule
/// `revision-jump`). Gaps are fine (drafts the contract system never
/// approved), but a recorded revision is never taken back: a jump of
/// millions, from a typo or a timestamp used as a revision, would spend the
/// numbers for good. Refused, it can still be corrected.
pub const MAX_REVISION_STEP: u32 = 1000;

/// Checks a customer id: `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`. It is compared
/// between revisions and contracts (第11条, 第16条), sent to billing and shown
/// to operators: a narrow alphabet keeps it printable and unambiguous.
pub fn check_customer_id(id: &str) -> Result<(), String> {
    let b = id.as_bytes();
    let ok = (1..=64).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "customer id {:?} must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}$",
            id.chars().take(40).collect::<String>()
        ))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("contract is larger than {MAX_CONTRACT_BYTES} bytes")]
    TooLarge,
    #[error("contract is not valid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("contract is not valid: {field}: {message}")]
    Invalid { field: String, message: String },
}

/// `^[A-Z][A-Z0-9-]{2,31}$`: short, upper case, safe in file names and, in
/// lower case, a valid Unix user name. One type with the adapters' allow-list
/// (`hostwright_validate::contract_id`).
pub use hostwright_validate::ContractId;

/// The service types of 第5条.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceType {
    Www,
    MailSecureMx,
    PackSecureMx,
    MailStandard,
    MailSecure,
    PackStandard,
    PackSecure,
    MiniPack,
}

impl ServiceType {
    pub const ALL: [ServiceType; 8] = [
        ServiceType::Www,
        ServiceType::MailSecureMx,
        ServiceType::PackSecureMx,
        ServiceType::MailStandard,
        ServiceType::MailSecure,
        ServiceType::PackStandard,
        ServiceType::PackSecure,
        ServiceType::MiniPack,
    ];

    /// The code used in contracts, the catalog and playbooks.
    pub fn code(self) -> &'static str {
        match self {
            ServiceType::Www => "www",
            ServiceType::MailSecureMx => "mail_secure_mx",
            ServiceType::PackSecureMx => "pack_secure_mx",
            ServiceType::MailStandard => "mail_standard",
            ServiceType::MailSecure => "mail_secure",
            ServiceType::PackStandard => "pack_standard",
            ServiceType::PackSecure => "pack_secure",
            ServiceType::MiniPack => "mini_pack",
        }
    }

    pub fn from_code(code: &str) -> Option<ServiceType> {
        ServiceType::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Includes a web site on our servers (and so web space and FTP).
    pub fn has_web(self) -> bool {
        matches!(
            self,
            ServiceType::Www
                | ServiceType::PackSecureMx
                | ServiceType::PackStandard
                | ServiceType::PackSecure
                | ServiceType::MiniPack
        )
    }

    /// Mail is provided through IIJ Secure MX (the Mini pack continues with
    /// Secure MX mail under the note of 第5条).
    pub fn has_secure_mx(self) -> bool {
        matches!(
            self,
            ServiceType::MailSecureMx | ServiceType::PackSecureMx | ServiceType::MiniPack
        )
    }

    /// Includes mail (on Secure MX or our legacy mail servers).
    pub fn has_mail(self) -> bool {
        self.has_secure_mx() || self.has_legacy_mail()
    }

    /// The family 別表②2 備考 names the service type by.
    pub fn family(self) -> ServiceFamily {
        match self {
            ServiceType::Www => ServiceFamily::Www,
            ServiceType::MailSecureMx | ServiceType::MailStandard | ServiceType::MailSecure => {
                ServiceFamily::Mail
            }
            ServiceType::PackSecureMx | ServiceType::PackStandard | ServiceType::PackSecure => {
                ServiceFamily::Pack
            }
            ServiceType::MiniPack => ServiceFamily::MiniPack,
        }
    }

    /// Mail on our own legacy servers (standard/secure), closed 2023-04-30.
    pub fn has_legacy_mail(self) -> bool {
        matches!(
            self,
            ServiceType::MailStandard
                | ServiceType::MailSecure
                | ServiceType::PackStandard
                | ServiceType::PackSecure
        )
    }
}

/// The families of service types that 別表②2 備考 speaks of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceFamily {
    /// www サーバホスティングサービス.
    Www,
    /// Mail サーバホスティングサービス (セキュア MX, スタンダード, セキュア).
    Mail,
    /// パックサービス (セキュア MX, スタンダード, セキュア).
    Pack,
    /// ミニパックサービス.
    MiniPack,
}

impl ServiceFamily {
    /// The changes 別表②2 備考 lists as サービス種別の変更 (10,000 円):
    /// Mail → パック, www → パック, パック or ミニパック → Mail or www.
    pub fn change_listed(from: ServiceFamily, to: ServiceFamily) -> bool {
        use ServiceFamily::*;
        matches!(
            (from, to),
            (Mail, Pack)
                | (Www, Pack)
                | (Pack, Mail)
                | (Pack, Www)
                | (MiniPack, Mail)
                | (MiniPack, Www)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerKind {
    Corporation,
    Individual,
}

/// 第13条: who may apply alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalCapacity {
    Adult,
    Minor,
    AdultWard,
    PersonUnderCuratorship,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    pub id: String,
    pub kind: CustomerKind,
    pub name: String,
    #[serde(default = "adult")]
    pub legal_capacity: LegalCapacity,
    /// Consent of the guardian / curator where 第13条 requires one.
    #[serde(default)]
    pub guardian_consent: bool,
}

fn adult() -> LegalCapacity {
    LegalCapacity::Adult
}

/// The contract's state at this revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", from = "StrictStatus")]
pub enum Status {
    Active,
    /// 第20条: service stopped; still billed as provided (第27条).
    Suspended {
        since: NaiveDate,
        reason: String,
    },
    /// The contract ends on `effective` (its last day), on the article of
    /// `ground`; see [`Termination`].
    Terminated(Termination),
}

impl Status {
    /// A customer's 第25条1項 termination (the common case).
    pub fn terminated(effective: NaiveDate, notified_on: NaiveDate) -> Status {
        Status::Terminated(Termination::notice(effective, notified_on))
    }

    pub fn termination(&self) -> Option<&Termination> {
        match self {
            Status::Terminated(t) => Some(t),
            _ => None,
        }
    }
}

/// How a contract ended: who ended it, on which article, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Termination {
    /// The last day of the contract.
    pub effective: NaiveDate,
    /// The day the termination was notified (第25条1項2項: the day the
    /// customer's notice arrived; 第24条4項, 第47条2項: the company's notice).
    pub notified_on: NaiveDate,
    #[serde(default)]
    pub ground: TerminationGround,
    /// The grounds as notified (第24条, 第46条) or what made the service
    /// unusable (第25条2項).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// 第25条2項: the event of 第21条1項 or 第22条1項 that made the service unusable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<UnusableCause>,
    /// 第24条2項: the item of 第20条1項 (1-11) the customer falls under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub article_20_item: Option<u8>,
}

impl Termination {
    pub fn notice(effective: NaiveDate, notified_on: NaiveDate) -> Termination {
        Termination {
            effective,
            notified_on,
            ground: TerminationGround::CustomerNotice,
            reason: None,
            cause: None,
            article_20_item: None,
        }
    }
}

/// Who ends a contract, and on which article.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TerminationGround {
    /// 第25条1項: the customer's notice, at a month's end.
    #[default]
    CustomerNotice,
    /// 第25条2項: the customer's immediate termination when 第21条1項 or
    /// 第22条1項 events keep it from using the service; ends the day the
    /// notice arrives.
    CustomerUnusable,
    /// 第24条1項: by the company, after a 第20条 suspension that was not cured.
    CompanyAfterSuspension,
    /// 第24条2項: by the company without suspension, on a ground of 第20条1項.
    CompanyWithoutSuspension,
    /// 第24条3項: by the company, the customer's continued use being unsuitable.
    CompanyUnsuitable,
    /// 第46条2項: by the company, without demand, the customer found to be
    /// an anti-social force.
    CompanyAntisocial,
    /// 第47条: the whole service abolished; ends on the abolition day.
    ServiceAbolished,
    /// 第25条3項 (第23条): the service type abolished; ends on that day.
    ServiceTypeAbolished,
}

impl TerminationGround {
    pub fn code(self) -> &'static str {
        match self {
            TerminationGround::CustomerNotice => "customer_notice",
            TerminationGround::CustomerUnusable => "customer_unusable",
            TerminationGround::CompanyAfterSuspension => "company_after_suspension",
            TerminationGround::CompanyWithoutSuspension => "company_without_suspension",
            TerminationGround::CompanyUnsuitable => "company_unsuitable",
            TerminationGround::CompanyAntisocial => "company_antisocial",
            TerminationGround::ServiceAbolished => "service_abolished",
            TerminationGround::ServiceTypeAbolished => "service_type_abolished",
        }
    }

    /// The article the termination rests on.
    pub fn article(self) -> &'static str {
        match self {
            TerminationGround::CustomerNotice => "第25条1項",
            TerminationGround::CustomerUnusable => "第25条2項",
            TerminationGround::CompanyAfterSuspension => "第24条1項",
            TerminationGround::CompanyWithoutSuspension => "第24条2項",
            TerminationGround::CompanyUnsuitable => "第24条3項",
            TerminationGround::CompanyAntisocial => "第46条2項",
            TerminationGround::ServiceAbolished => "第47条",
            TerminationGround::ServiceTypeAbolished => "第25条3項, 第23条",
        }
    }

    /// Whether ending this way inside the minimum period owes the rest of
    /// it (第33条 "解約・解除などにより終了した場合"). The customer's 解約 and
    /// every 解除 do; an abolition by the company (第23条, 第47条: "都合により")
    /// does not: see docs/billing.md for the reading.
    pub fn owes_minimum_period(self) -> bool {
        !matches!(
            self,
            TerminationGround::ServiceAbolished | TerminationGround::ServiceTypeAbolished
        )
    }

    /// Whether the company ends the contract (第24条, 第46条).
    pub fn by_company(self) -> bool {
        matches!(
            self,
            TerminationGround::CompanyAfterSuspension
                | TerminationGround::CompanyWithoutSuspension
                | TerminationGround::CompanyUnsuitable
                | TerminationGround::CompanyAntisocial
        )
    }
}

/// 第25条2項: what kept the customer from using the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnusableCause {
    /// 第21条1項(1): maintenance or works on our equipment.
    Maintenance,
    /// 第21条1項(2): a failure of our equipment.
    EquipmentFailure,
    /// 第21条1項(3): another carrier stopped its service.
    CarrierSuspension,
    /// 第22条1項: a restriction of the service.
    Restriction,
}

impl UnusableCause {
    pub fn article(self) -> &'static str {
        match self {
            UnusableCause::Maintenance => "第21条1項(1)",
            UnusableCause::EquipmentFailure => "第21条1項(2)",
            UnusableCause::CarrierSuspension => "第21条1項(3)",
            UnusableCause::Restriction => "第22条1項",
        }
    }
}

/// How `Status` is read: serde ignores `deny_unknown_fields` for the unit
/// variant of an internally tagged enum, so `{"state": "active", "x": 1}`
/// would pass; an empty struct variant refuses the stray field.
#[derive(Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
enum StrictStatus {
    Active {},
    Suspended {
        since: NaiveDate,
        reason: String,
    },
    Terminated {
        effective: NaiveDate,
        notified_on: NaiveDate,
        #[serde(default)]
        ground: TerminationGround,
        #[serde(default)]
        reason: Option<String>,
        #[serde(default)]
        cause: Option<UnusableCause>,
        #[serde(default)]
        article_20_item: Option<u8>,
    },
}

impl From<StrictStatus> for Status {
    fn from(s: StrictStatus) -> Status {
        match s {
            StrictStatus::Active {} => Status::Active,
            StrictStatus::Suspended { since, reason } => Status::Suspended { since, reason },
            StrictStatus::Terminated {
                effective,
                notified_on,
                ground,
                reason,
                cause,
                article_20_item,
            } => Status::Terminated(Termination {
                effective,
                notified_on,
                ground,
                reason,
                cause,
                article_20_item,
            }),
        }
    }
}

/// 第18条: the customer's position passed to an heir or a successor company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Succession {
    pub kind: SuccessionKind,
    /// The day of the inheritance (相続開始の日), merger or split.
    pub occurred_on: NaiveDate,
    /// The day the successor reported it to the company with the proof.
    pub reported_on: NaiveDate,
    /// The customer before the succession (`customer` is the successor).
    pub predecessor: Predecessor,
    /// 第18条4項: heirs who took over the position together (default 1).
    #[serde(default = "one")]
    pub heirs: u32,
    /// 第18条4項5項: who named the representative when there are several heirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub representative_named_by: Option<RepresentativeNamedBy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predecessor {
    pub id: String,
    pub kind: CustomerKind,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuccessionKind {
    /// 相続: an individual customer's heir.
    Inheritance,
    /// 合併: the surviving or new corporation.
    Merger,
    /// 会社分割: the corporation that took over the business (第18条2項).
    CompanySplit,
}

impl SuccessionKind {
    pub fn name_ja(self) -> &'static str {
        match self {
            SuccessionKind::Inheritance => "相続",
            SuccessionKind::Merger => "合併",
            SuccessionKind::CompanySplit => "会社分割",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepresentativeNamedBy {
    /// 第18条4項: the heirs named one of them in writing within the period.
    Heirs,
    /// 第18条5項: no notice came, the company named the representative.
    Company,
}

/// 別表②2: the service type changed in this contract's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceChange {
    /// The service type before the change (`service` is the one after).
    pub from: ServiceType,
    /// The day the new service type takes effect.
    pub effective: NaiveDate,
}

/// Every option and recurring item of 別表③ a contract can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionItem {
    /// SSL サーバホスティングサービス (annual + monthly).
    SslHosting,
    /// 追加 WWW サーバ容量, per 1 GB.
    WwwDiskExtra,
    /// 追加 SSL サーバ容量, per 1 GB.
    SslDiskExtra,
    /// 追加 FTP アカウント, per account.
    FtpAccountExtra,
    /// アクセスログ追加設定・集計.
    AccessLog,
    /// WEB ディテクト 100 (priced by its own terms: quoted).
    WebDetect100,
    /// WEB ディテクト 300 (priced by its own terms: quoted).
    WebDetect300,
    /// IPS サービス, per FQDN.
    Ips,
    /// メーリングリストサーバホスティング (スタンダード), legacy.
    MailingListStandard,
    /// メーリングリストサーバホスティング (セキュア), legacy.
    MailingListSecure,
    /// メールアカウント追加 (スタンダード), per 10 accounts, legacy.
    MailAccountExtraStandard,
    /// メールアカウント追加 (セキュア), per account, legacy.
    MailAccountExtraSecure,
    /// メール監査機能サービス (legacy mail), quoted initial.
    MailAudit,
    /// Secure MX メールアカウント追加, per account.
    MxAccountExtra,
    /// Secure MX ディスク容量追加, per 10 GB, never reducible.
    MxDiskExtra,
    /// Secure MX メーリングリストオプション (+ metered lists).
    MxMailingList,
    /// アドバンストアーカイブオプション (quoted, metered by accounts).
    MxArchive,
    /// メール監査オプション (quoted, metered by accounts).
    MxAudit,
    /// スペアメールオプション (quoted).
    MxSpareMail,
    /// サンドボックスオプション (quoted, metered by accounts).
    MxSandbox,
    /// プライベートリレーサーバオプション (quoted).
    MxPrivateRelay,
    /// IIJ ID 連携オプション (needs an IIJ ID subscription).
    MxIijIdLink,
    /// DOX 連携オプション (needs an IIJ DOX subscription).
    MxDoxLink,
    /// アカウント管理 API オプション (listed without a price in 別表③).
    MxAccountApi,
    /// フレッツ・ISDN 対応接続サービス.
    FletsIsdn,
    /// フレッツ光対応接続サービス (its own terms: quoted).
    FletsHikari,
}

impl OptionItem {
    pub fn code(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionLine {
    pub item: OptionItem,
    pub quantity: u32,
    /// Date the option takes effect (第17条 notice is counted to it).
    #[serde(default)]
    pub effective: Option<NaiveDate>,
    /// Agreed unit price of quoted monthly and metered fees.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub quoted_monthly: Option<Decimal>,
    /// Agreed amount of quoted initial and annual fees (実費, 当社が別途示す金額).
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub quoted_initial: Option<Decimal>,
}

/// The registry class of a domain, which picks its fee table in 別表③.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistryClass {
    /// JPRS 属性型・地域型 (co.jp, or.jp, tokyo.jp ...).
    JprsAttribute,
    /// JPRS 汎用 (.jp).
    JprsGeneric,
    /// gTLD (.com, .net ...).
    Gtld,
}

impl RegistryClass {
    /// The suffix of billing codes priced from this class's table
    /// (`dns_operation_monthly:jprsattribute`); part of the billing report
    /// format, so it never follows a rename of the variants.
    pub fn billing_code(self) -> &'static str {
        match self {
            RegistryClass::JprsAttribute => "jprsattribute",
            RegistryClass::JprsGeneric => "jprsgeneric",
            RegistryClass::Gtld => "gtld",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsOperation {
    /// The customer runs DNS elsewhere.
    #[default]
    None,
    Monthly,
    Yearly,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// In IDNA A-label form after parsing.
    pub name: String,
    pub registry: RegistryClass,
    /// ドメインお預かりサービス: we hold the registration.
    #[serde(default)]
    pub custody: bool,
    #[serde(default)]
    pub dns_operation: DnsOperation,
    /// Month the custody renewal fee is billed in (※17); defaults to the
    /// month the custody was requested.
    #[serde(default)]
    pub renewal_month: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Administrator {
    pub name: String,
    pub email: String,
}

/// Secure MX settings: 第8条 target domains and addresses, 第9条 administrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecureMx {
    pub target_domains: Vec<String>,
    pub target_ips: Vec<IpAddr>,
    pub administrator: Administrator,
    /// Local parts of the mailboxes to create under the first target domain.
    #[serde(default)]
    pub mailboxes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct External {
    /// IIJ ID サービス subscription the customer holds.
    #[serde(default)]
    pub iij_id: Option<String>,
    /// IIJ ドキュメントエクステンジサービス (DOX) subscription.
    #[serde(default)]
    pub dox: Option<String>,
}

/// One-time fees of 別表②2 and 別表③: change fees and domain operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OneTimeItem {
    ServiceTypeChange,
    SpamScanSetting,
    DomainRegistration,
    DomainNameChange,
    DomainAdminTransfer,
    DomainRegistrarTransfer,
    DomainTransferExpedited,
    DomainTransferNormal,
    DomainAbolishAtRenewal,
    DomainAbolishEarly,
    RegistrationChange,
    RegistrationRenewal,
    HostName,
    DnsForwardChange,
    DnsReverseChange,
}

impl OneTimeItem {
    /// The contract format's name of the item (also the head of its billing code).
    pub fn code(self) -> &'static str {
        use OneTimeItem::*;
        match self {
            ServiceTypeChange => "service_type_change",
            SpamScanSetting => "spam_scan_setting",
            DomainRegistration => "domain_registration",
            DomainNameChange => "domain_name_change",
            DomainAdminTransfer => "domain_admin_transfer",
            DomainRegistrarTransfer => "domain_registrar_transfer",
            DomainTransferExpedited => "domain_transfer_expedited",
            DomainTransferNormal => "domain_transfer_normal",
            DomainAbolishAtRenewal => "domain_abolish_at_renewal",
            DomainAbolishEarly => "domain_abolish_early",
            RegistrationChange => "registration_change",
            RegistrationRenewal => "registration_renewal",
            HostName => "host_name",
            DnsForwardChange => "dns_forward_change",
            DnsReverseChange => "dns_reverse_change",
        }
    }

    /// The fee's name as 別表②2 and 別表③ write it, for statements.
    pub fn name_ja(self) -> &'static str {
        use OneTimeItem::*;
        match self {
            ServiceTypeChange => "サービス種別変更",
            SpamScanSetting => "スパムスキャン設定変更",
            DomainRegistration => "ドメイン名登録申請 (新規取得)",
            DomainNameChange => "ドメイン名変更申請",
            DomainAdminTransfer => "ドメイン管理者移転申請",
            DomainRegistrarTransfer => "レジストラ移転申請",
            DomainTransferExpedited => "ドメイン名移転申請 (申請完了期間をお約束する場合)",
            DomainTransferNormal => "ドメイン名移転申請 (通常の譲渡申請)",
            DomainAbolishAtRenewal => "ドメイン名廃止届 (更新時に廃止)",
            DomainAbolishEarly => "ドメイン名廃止届 (有効期限内の廃止)",
            RegistrationChange => "記載事項変更届 ※16",
            RegistrationRenewal => "登録更新 ※17",
            HostName => "ホスト名 登録・変更・削除",
            DnsForwardChange => "DNS 運用サービス 設定変更 (正引き) ※18",
            DnsReverseChange => "DNS 運用サービス 設定変更 (逆引き) ※18",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneTime {
    pub item: OneTimeItem,
    pub date: NaiveDate,
    #[serde(default = "one")]
    pub quantity: u32,
    /// The domain a domain operation is for (picks the registry's table).
    #[serde(default)]
    pub domain: Option<String>,
    /// For host-name operations: primary and secondary count twice (別表③ gTLD).
    #[serde(default)]
    pub primary_and_secondary: bool,
}

fn one() -> u32 {
    1
}

/// A metered option's maximum count in a month (※13, ※14, ※15).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// `YYYY-MM`.
    pub month: String,
    pub item: OptionItem,
    pub max_count: u32,
}

/// An outage claimed under 第37条.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// When we learned of the outage.
    pub started: NaiveDate,
    /// Consecutive hours the service was entirely unusable.
    pub hours: u32,
    pub claimed_on: NaiveDate,
}

/// One service contract at one revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    pub contract_id: ContractId,
    /// Strictly increasing per contract.
    pub revision: u32,
    /// The date the request behind this revision was made.
    pub requested_on: NaiveDate,
    pub customer: Customer,
    pub service: ServiceType,
    /// 第12条, 第30条: the service start date (requested, or as provisioned).
    pub service_start: NaiveDate,
    pub status: Status,
    #[serde(default)]
    pub options: Vec<OptionLine>,
    #[serde(default)]
    pub domains: Vec<Domain>,
    #[serde(default)]
    pub secure_mx: Option<SecureMx>,
    #[serde(default)]
    pub external: External,
    #[serde(default)]
    pub one_time: Vec<OneTime>,
    #[serde(default)]
    pub usage: Vec<Usage>,
    #[serde(default)]
    pub outages: Vec<Outage>,
    /// 第18条: the latest succession of the customer's position, kept in
    /// every later revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succession: Option<Succession>,
    /// 別表②2: the latest change of service type, kept in every later revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_change: Option<ServiceChange>,
}

/// Converts a domain to its A-label form, or says why it cannot be one.
pub fn normalize_domain(name: &str) -> Result<String, String> {
    let ascii = idna::domain_to_ascii_strict(name.trim_end_matches('.'))
        .map_err(|_| format!("{name:?} is not a valid internationalized domain name"))?;
    hostwright_validate::domain_name(&ascii)
        .map(str::to_string)
        .map_err(|e| e.to_string())
}

impl Contract {
    /// Parses and normalises a contract document.
    pub fn from_json(bytes: &[u8]) -> Result<Contract, ContractError> {
        if bytes.len() > MAX_CONTRACT_BYTES {
            return Err(ContractError::TooLarge);
        }
        let mut c: Contract = serde_json::from_slice(bytes)?;
        c.normalize()?;
        Ok(c)
    }

    fn normalize(&mut self) -> Result<(), ContractError> {
        let invalid = |field: String, message: String| ContractError::Invalid { field, message };
        if self.revision == 0 {
            return Err(invalid("/revision".into(), "revisions start at 1".into()));
        }
        if self.revision > MAX_REVISION {
            return Err(invalid(
                "/revision".into(),
                format!("must be at most {MAX_REVISION}"),
            ));
        }
        check_customer_id(&self.customer.id).map_err(|m| invalid("/customer/id".into(), m))?;
        for (i, d) in self.domains.iter_mut().enumerate() {
            d.name =
                normalize_domain(&d.name).map_err(|m| invalid(format!("/domains/{i}/name"), m))?;
            // A month that never comes would silently never bill the ※17
            // renewal fee.
            if d.renewal_month.is_some_and(|m| !(1..=12).contains(&m)) {
                return Err(invalid(
                    format!("/domains/{i}/renewal_month"),
                    "must be a month, 1-12 (別表③ ※17)".into(),
                ));
            }
        }
        if let Some(mx) = self.secure_mx.as_mut() {
            for (i, d) in mx.target_domains.iter_mut().enumerate() {
                *d = normalize_domain(d)
                    .map_err(|m| invalid(format!("/secure_mx/target_domains/{i}"), m))?;
            }
            for (i, lp) in mx.mailboxes.iter().enumerate() {
                // The Secure MX provider's rule, the one the adapter applies.
                if let Err(e) = hostwright_validate::mail_local_part(lp) {
                    return Err(invalid(format!("/secure_mx/mailboxes/{i}"), e.to_string()));
                }
            }
            let email_ok = mx
                .administrator
                .email
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && normalize_domain(d).is_ok());
            if !email_ok {
                return Err(invalid(
                    "/secure_mx/administrator/email".into(),
                    "must be an e-mail address".into(),
                ));
            }
        }
        for (i, o) in self.one_time.iter_mut().enumerate() {
            if let Some(d) = o.domain.as_mut() {
                *d =
                    normalize_domain(d).map_err(|m| invalid(format!("/one_time/{i}/domain"), m))?;
            }
        }
        for (i, u) in self.usage.iter().enumerate() {
            if crate::calendar::YearMonth::parse(&u.month).is_none() {
                return Err(invalid(
                    format!("/usage/{i}/month"),
                    "must be YYYY-MM".into(),
                ));
            }
        }
        Ok(())
    }

    /// The service type in force on `date` as this revision records it: the
    /// type before its `service_change` until the change takes effect.
    pub fn service_on(&self, date: NaiveDate) -> ServiceType {
        match &self.service_change {
            Some(sc) if date < sc.effective => sc.from,
            _ => self.service,
        }
    }

    /// Quantity of an option (0 when absent).
    pub fn quantity(&self, item: OptionItem) -> u32 {
        self.options
            .iter()
            .filter(|o| o.item == item)
            .map(|o| o.quantity)
            .sum()
    }

    pub fn has_option(&self, item: OptionItem) -> bool {
        self.quantity(item) > 0
    }
}

#[cfg(test)]
mod tests;
