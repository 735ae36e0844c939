//! The typed tree of a FetchXML query. Names (tables, columns, aliases) are kept as written:
//! whether they exist is for the consumer to check against its schema.

/// `<fetch>`: the root of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// `mapping` (only `logical` is valid).
    pub mapping: Option<String>,
    /// `version` (informational).
    pub version: Option<String>,
    /// `count`: the page size.
    pub count: Option<u32>,
    /// `page`: the page number (1-based).
    pub page: Option<u32>,
    /// `paging-cookie`: the inner cookie of the previous page
    /// (`<cookie page="1"><accountid last="{…}" first="{…}" /></cookie>`), XML-unescaped.
    pub paging_cookie: Option<String>,
    /// `top`: at most this many rows.
    pub top: Option<u32>,
    /// `distinct`.
    pub distinct: bool,
    /// `aggregate`.
    pub aggregate: bool,
    /// `aggregatelimit`: a per-query aggregate record limit.
    pub aggregate_limit: Option<u32>,
    /// `no-lock` (no effect; accepted).
    pub no_lock: bool,
    /// `returntotalrecordcount`.
    pub return_total_record_count: bool,
    /// `datasource` (`retained` for long-term retention data).
    pub datasource: Option<String>,
    /// The queried table.
    pub entity: Entity,
}

/// `<entity>`: the table the query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    /// Logical name of the table.
    pub name: String,
    /// Columns, orders, filters and joins.
    pub node: Node,
}

/// The children an `<entity>` or a `<link-entity>` may hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// `<all-attributes/>` was given.
    pub all_attributes: bool,
    /// `<attribute>` elements in document order.
    pub attributes: Vec<Attribute>,
    /// `<order>` elements in document order.
    pub orders: Vec<Order>,
    /// `<filter>` elements (several are combined with `and`).
    pub filters: Vec<Filter>,
    /// `<link-entity>` elements in document order.
    pub links: Vec<LinkEntity>,
}

/// `<attribute>`: one column to return (or to aggregate / group by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Logical name of the column.
    pub name: String,
    /// `alias`: the name of the returned value.
    pub alias: Option<String>,
    /// `aggregate`.
    pub aggregate: Option<AggregateFn>,
    /// `groupby="true"`.
    pub groupby: bool,
    /// `distinct="true"` (with `countcolumn`).
    pub distinct: bool,
    /// `dategrouping`.
    pub dategrouping: Option<DateGrouping>,
    /// `usertimezone`.
    pub usertimezone: Option<bool>,
    /// `rowaggregate` (`CountChildren`).
    pub rowaggregate: Option<String>,
}

/// Aggregate functions of `<attribute aggregate="…">`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateFn {
    /// Number of rows.
    Count,
    /// Number of rows with a value in the column.
    CountColumn,
    /// Sum of the values.
    Sum,
    /// Average of the values.
    Avg,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
}

impl AggregateFn {
    /// Parses the attribute value (case-sensitive, as the schema's enumeration).
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "count" => Self::Count,
            "countcolumn" => Self::CountColumn,
            "sum" => Self::Sum,
            "avg" => Self::Avg,
            "min" => Self::Min,
            "max" => Self::Max,
            _ => return None,
        })
    }

    /// The FetchXML name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::CountColumn => "countcolumn",
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
        }
    }
}

/// `dategrouping` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DateGrouping {
    /// Day of the month.
    Day,
    /// Week of the year.
    Week,
    /// Month of the year.
    Month,
    /// Quarter of the year.
    Quarter,
    /// Year.
    Year,
    /// Fiscal period.
    FiscalPeriod,
    /// Fiscal year.
    FiscalYear,
}

impl DateGrouping {
    /// Parses the attribute value.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "day" => Self::Day,
            "week" => Self::Week,
            "month" => Self::Month,
            "quarter" => Self::Quarter,
            "year" => Self::Year,
            "fiscal-period" => Self::FiscalPeriod,
            "fiscal-year" => Self::FiscalYear,
            _ => return None,
        })
    }
}

/// `<order>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// `attribute`: a column of the containing entity.
    pub attribute: Option<String>,
    /// `alias`: an aggregate or group alias.
    pub alias: Option<String>,
    /// `entityname`: a link-entity alias the attribute belongs to.
    pub entityname: Option<String>,
    /// `descending="true"`.
    pub descending: bool,
}

/// `<filter type="and|or">`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// `or` when true, `and` (the default) otherwise.
    pub or: bool,
    /// Conditions, nested filters and filter link-entities, in document order.
    pub items: Vec<FilterItem>,
}

/// One child of a `<filter>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterItem {
    /// `<condition>`.
    Condition(Condition),
    /// A nested `<filter>`.
    Filter(Filter),
    /// A `<link-entity>` of a filter link type (`any`, `not any`, `all`, `not all`).
    Link(LinkEntity),
}

/// `<condition>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// `attribute` (or its synonym `column`).
    pub attribute: String,
    /// `entityname`: the alias of the link-entity the column belongs to.
    pub entityname: Option<String>,
    /// `operator`.
    pub operator: Operator,
    /// The values: the `value` attribute, or the `<value>` children.
    pub values: Vec<String>,
    /// `valueof`: compare with another column instead of a value.
    pub valueof: Option<String>,
}

/// How many values an operator takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// None (`null`, `today`, `eq-userid`).
    None,
    /// Exactly one (`eq`, `like`, `last-x-days`, `on`).
    One,
    /// Exactly two (`between`).
    Two,
    /// One or more (`in`).
    Many,
}

macro_rules! operators {
    ($( $variant:ident = $name:literal : $arity:ident, )*) => {
        /// Condition operators (`operator="…"`), as the FetchXML schema lists them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operator {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl Operator {
            /// Parses an operator name (case-sensitive, as the schema's enumeration).
            pub fn from_name(s: &str) -> Option<Self> {
                match s {
                    $( $name => Some(Self::$variant), )*
                    _ => None,
                }
            }

            /// The FetchXML name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $name, )*
                }
            }

            /// How many values the operator takes.
            pub fn arity(self) -> Arity {
                match self {
                    $( Self::$variant => Arity::$arity, )*
                }
            }
        }
    };
}

operators! {
    Eq = "eq": One,
    Ne = "ne": One,
    Neq = "neq": One,
    Gt = "gt": One,
    Ge = "ge": One,
    Lt = "lt": One,
    Le = "le": One,
    Like = "like": One,
    NotLike = "not-like": One,
    BeginsWith = "begins-with": One,
    NotBeginWith = "not-begin-with": One,
    EndsWith = "ends-with": One,
    NotEndWith = "not-end-with": One,
    In = "in": Many,
    NotIn = "not-in": Many,
    Between = "between": Two,
    NotBetween = "not-between": Two,
    Null = "null": None,
    NotNull = "not-null": None,
    EqUserId = "eq-userid": None,
    NeUserId = "ne-userid": None,
    EqBusinessId = "eq-businessid": None,
    NeBusinessId = "ne-businessid": None,
    EqUserTeams = "eq-userteams": None,
    EqUserOrUserTeams = "eq-useroruserteams": None,
    EqUserOrUserHierarchy = "eq-useroruserhierarchy": None,
    EqUserOrUserHierarchyAndTeams = "eq-useroruserhierarchyandteams": None,
    EqUserLanguage = "eq-userlanguage": None,
    Above = "above": One,
    EqOrAbove = "eq-or-above": One,
    Under = "under": One,
    EqOrUnder = "eq-or-under": One,
    NotUnder = "not-under": One,
    ContainValues = "contain-values": Many,
    NotContainValues = "not-contain-values": Many,
    Today = "today": None,
    Yesterday = "yesterday": None,
    Tomorrow = "tomorrow": None,
    LastSevenDays = "last-seven-days": None,
    NextSevenDays = "next-seven-days": None,
    LastWeek = "last-week": None,
    ThisWeek = "this-week": None,
    NextWeek = "next-week": None,
    LastMonth = "last-month": None,
    ThisMonth = "this-month": None,
    NextMonth = "next-month": None,
    LastYear = "last-year": None,
    ThisYear = "this-year": None,
    NextYear = "next-year": None,
    LastXHours = "last-x-hours": One,
    NextXHours = "next-x-hours": One,
    LastXDays = "last-x-days": One,
    NextXDays = "next-x-days": One,
    LastXWeeks = "last-x-weeks": One,
    NextXWeeks = "next-x-weeks": One,
    LastXMonths = "last-x-months": One,
    NextXMonths = "next-x-months": One,
    LastXYears = "last-x-years": One,
    NextXYears = "next-x-years": One,
    OlderThanXMinutes = "olderthan-x-minutes": One,
    OlderThanXHours = "olderthan-x-hours": One,
    OlderThanXDays = "olderthan-x-days": One,
    OlderThanXWeeks = "olderthan-x-weeks": One,
    OlderThanXMonths = "olderthan-x-months": One,
    OlderThanXYears = "olderthan-x-years": One,
    On = "on": One,
    OnOrBefore = "on-or-before": One,
    OnOrAfter = "on-or-after": One,
    NotOn = "not-on": One,
    InFiscalYear = "in-fiscal-year": One,
    InFiscalPeriod = "in-fiscal-period": One,
    InFiscalPeriodAndYear = "in-fiscal-period-and-year": Two,
    InOrBeforeFiscalPeriodAndYear = "in-or-before-fiscal-period-and-year": Two,
    InOrAfterFiscalPeriodAndYear = "in-or-after-fiscal-period-and-year": Two,
    LastFiscalYear = "last-fiscal-year": None,
    ThisFiscalYear = "this-fiscal-year": None,
    NextFiscalYear = "next-fiscal-year": None,
    LastFiscalPeriod = "last-fiscal-period": None,
    ThisFiscalPeriod = "this-fiscal-period": None,
    NextFiscalPeriod = "next-fiscal-period": None,
    LastXFiscalYears = "last-x-fiscal-years": One,
    NextXFiscalYears = "next-x-fiscal-years": One,
    LastXFiscalPeriods = "last-x-fiscal-periods": One,
    NextXFiscalPeriods = "next-x-fiscal-periods": One,
}

/// `link-type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// `inner` (the default).
    Inner,
    /// `outer`.
    Outer,
    /// `exists`.
    Exists,
    /// `in`.
    In,
    /// `matchfirstrowusingcrossapply`.
    MatchFirstRowUsingCrossApply,
    /// `any` (inside a filter).
    Any,
    /// `not any` (inside a filter).
    NotAny,
    /// `all` (inside a filter).
    All,
    /// `not all` (inside a filter).
    NotAll,
}

impl LinkType {
    /// Parses a `link-type` value.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "inner" => Self::Inner,
            "outer" => Self::Outer,
            "exists" => Self::Exists,
            "in" => Self::In,
            "matchfirstrowusingcrossapply" => Self::MatchFirstRowUsingCrossApply,
            "any" => Self::Any,
            "not any" => Self::NotAny,
            "all" => Self::All,
            "not all" => Self::NotAll,
            _ => return None,
        })
    }

    /// The FetchXML name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inner => "inner",
            Self::Outer => "outer",
            Self::Exists => "exists",
            Self::In => "in",
            Self::MatchFirstRowUsingCrossApply => "matchfirstrowusingcrossapply",
            Self::Any => "any",
            Self::NotAny => "not any",
            Self::All => "all",
            Self::NotAll => "not all",
        }
    }

    /// Whether this type may only appear inside a `<filter>`.
    pub fn is_filter_type(self) -> bool {
        matches!(self, Self::Any | Self::NotAny | Self::All | Self::NotAll)
    }
}

/// `<link-entity>`: a join to another table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEntity {
    /// Logical name of the linked table.
    pub name: String,
    /// `from`: the column of the linked table.
    pub from: Option<String>,
    /// `to`: the column of the parent table.
    pub to: Option<String>,
    /// `alias`.
    pub alias: Option<String>,
    /// `link-type`.
    pub link_type: LinkType,
    /// `intersect="true"`.
    pub intersect: bool,
    /// Columns, orders, filters and nested joins of the linked table.
    pub node: Node,
}

impl Node {
    /// Every link-entity under this node, nested ones and those inside filters included.
    pub fn link_count(&self) -> usize {
        fn in_filter(f: &Filter) -> usize {
            f.items
                .iter()
                .map(|i| match i {
                    FilterItem::Condition(_) => 0,
                    FilterItem::Filter(f) => in_filter(f),
                    FilterItem::Link(l) => 1 + l.node.link_count(),
                })
                .sum()
        }
        self.links.iter().map(|l| 1 + l.node.link_count()).sum::<usize>()
            + self.filters.iter().map(in_filter).sum::<usize>()
    }
}
