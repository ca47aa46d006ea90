"""Text for the search benchmark: English and Chinese chat, drawn from word lists by rank.

Words are drawn with a Zipf-like law (the word of rank r with weight 1 / r^s), so common
words are common (``the``, ``order``, ``please``; 我们, 问题) and the tail is rare; on top of
that come tokens that are rare by construction (order numbers ``ORD-48213``, invoices, ticket
ids), as in real support chats. The lists are ordered roughly by how often such words come up
in chat with a product's assistant; their exact order only moves which words are rare.

Everything draws from one ``random.Random``, so a seed gives the same text every time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from itertools import accumulate

# Stop words first (full-text search drops them; they make the text real), then content words.
ENGLISH = """
the to and a of i you is for it that in this we on be can with your have my are not what
will do if so but at as me there just please about an from our or was how would like get
they all know one thanks out up when yes which any more also need could here want help time
order now see let some then should sure check no new because make did has been look work
into still think back today only them thank go hi use by over right please way good well
account issue team email update problem payment price plan call free data week day report
question first last next support refund service product customer booking hotel flight trip
change set send file page error list message number date name open link phone store cart
delivery shipping address card bank invoice subscription billing charge amount total cost
receipt discount code coupon offer sale item size color return exchange warranty repair
meeting schedule calendar agenda notes slides deadline project task ticket status review
release version feature bug fix build deploy server database login password reset access
user admin setting option profile photo image video document folder upload download share
travel airport train station city room night tour ticket museum restaurant dinner lunch
breakfast menu reservation weather rain sun morning evening weekend holiday summer winter
kyoto tokyo osaka shanghai beijing london paris berlin york seattle sydney singapore
family friend manager developer designer engineer doctor student teacher partner client
contract agreement policy terms privacy security report analysis chart table summary draft
budget forecast revenue growth market quarter goal target metric result score test sample
model prompt token context answer search result source reference article blog guide tutorial
recipe ingredient kitchen garden house apartment rent move office desk chair laptop monitor
keyboard printer battery charger cable screen camera speaker headphone router network wifi
signal app mobile android iphone browser chrome window tab extension plugin install upgrade
backup restore sync cloud storage quota limit usage bandwidth latency timeout crash freeze
slow fast quick easy hard simple complex clear early late soon later before after during
maybe probably actually really exactly almost already again always never often sometimes
today tomorrow yesterday monday tuesday wednesday thursday friday saturday sunday january
february march april june july august september october november december morning afternoon
great nice perfect awesome terrible awful weird strange funny happy sad angry sorry glad
explain describe compare translate summarize rewrite review suggest recommend confirm cancel
approve reject request submit receive deliver arrive leave return pay buy sell order track
package parcel courier warehouse inventory stock supplier vendor shipment customs tariff
passport visa insurance claim coverage premium deductible policyholder beneficiary
appointment clinic pharmacy prescription symptom allergy vaccine therapy insurance dentist
lesson course exam homework grade essay thesis chapter paragraph sentence grammar vocabulary
python javascript typescript rust golang kotlin swift sql postgres redis kafka docker
kubernetes terraform ansible nginx linux ubuntu debian macos windows github gitlab jira
slack zoom teams notion figma excel spreadsheet pivot formula macro dashboard widget
invoice reimbursement expense payroll salary bonus pension tax deduction audit compliance
lawyer court lawsuit settlement dispute arbitration mediation notary witness evidence
wedding birthday anniversary gift present flowers cake party guest venue photographer
hiking camping fishing skiing surfing cycling running swimming yoga gym marathon trail
volcano glacier canyon waterfall lagoon island peninsula archipelago savanna tundra
sushi ramen tempura matcha mochi udon soba sake wasabi bento izakaya ryokan onsen shrine
temple pagoda garden bamboo maple cherry blossom lantern festival kimono geisha samurai
quantum neutrino photon isotope catalyst enzyme protein genome mitochondria chromosome
sonnet haiku limerick ballad elegy stanza metaphor allegory synecdoche onomatopoeia
espresso cappuccino latte macchiato affogato ristretto cortado frappuccino americano
saxophone clarinet oboe bassoon trombone cello harpsichord xylophone accordion ukulele
""".split()

# Common Chinese words (mostly two characters), by rank.
CHINESE = """
我们 你们 问题 可以 需要 谢谢 订单 今天 时间 现在 已经 没有 帮助 客户 服务 退款 支付 价格
会议 明天 项目 系统 用户 信息 账户 邮件 文件 数据 报告 计划 安排 确认 取消 修改 更新 发送
酒店 预订 航班 旅行 东京 京都 大阪 上海 北京 广州 深圳 香港 台北 首尔 机场 火车 地铁 出租
天气 下雨 周末 假期 早上 下午 晚上 餐厅 晚饭 午饭 早饭 菜单 咖啡 茶叶 水果 蔬菜 面包 米饭
发票 合同 协议 政策 隐私 安全 密码 登录 注册 设置 下载 上传 分享 链接 网站 应用 手机 电脑
经理 同事 朋友 家人 老师 学生 医生 律师 工程师 设计师 开发 测试 部署 发布 版本 功能 错误
快递 包裹 物流 仓库 库存 供应商 发货 收货 地址 电话 号码 优惠 折扣 积分 会员 套餐 续费
预算 收入 成本 利润 市场 销售 季度 目标 指标 分析 图表 总结 草稿 翻译 解释 比较 推荐 建议
寺庙 神社 樱花 红叶 温泉 和服 抹茶 寿司 拉面 天妇罗 清水寺 金阁寺 岚山 伏见稻荷 奈良 鹿
保险 理赔 签证 护照 海关 关税 医院 药店 处方 过敏 疫苗 预约 牙医 体检 健身 跑步 游泳 瑜伽
""".split()

# Words that start Chinese sentences or join them.
CHINESE_GLUE = ["请问", "我想", "能不能", "麻烦", "关于", "因为", "所以", "但是", "如果", "还有"]

TOOLS = (
    "searchWeb",
    "getWeather",
    "lookupOrder",
    "issueRefund",
    "bookHotel",
    "getCalendar",
    "sendEmail",
    "runCode",
)
DYNAMIC_TOOLS = ("mcp_github_search", "mcp_jira_issue", "mcp_drive_read", "mcp_slack_post")
MODELS = ("gpt-5-mini", "gpt-5", "claude-sonnet-5", "qwen-max", "gemini-3-flash", "llama-5-70b")
TAGS = (
    "support",
    "billing",
    "sales",
    "travel",
    "onboarding",
    "bug",
    "feature-request",
    "refund",
    "urgent",
    "vip",
    "legal",
    "feedback",
)
CHANNELS = ("web", "ios", "android", "api", "slack")
ERRORS = (
    "rate limit exceeded, retry in 30 seconds",
    "upstream service unavailable (503)",
    "timeout after 10000 ms",
    "invalid argument: date must be in the future",
    "permission denied for this resource",
)


@dataclass(frozen=True)
class Vocabulary:
    """Words with the cumulative weights of a Zipf-like law over their ranks."""

    words: tuple[str, ...]
    cum_weights: tuple[float, ...] = field(repr=False)

    @classmethod
    def zipf(cls, words: list[str], s: float) -> Vocabulary:
        unique = tuple(dict.fromkeys(words))  # first occurrence keeps its rank
        weights = [1.0 / (rank**s) for rank in range(1, len(unique) + 1)]
        return cls(unique, tuple(accumulate(weights)))

    def draw(self, rng: random.Random, k: int) -> list[str]:
        return rng.choices(self.words, cum_weights=self.cum_weights, k=k)

    def probability(self, word: str) -> float:
        """The chance that one draw gives ``word``."""
        rank = self.words.index(word)
        low = self.cum_weights[rank - 1] if rank else 0.0
        return (self.cum_weights[rank] - low) / self.cum_weights[-1]


EN = Vocabulary.zipf(ENGLISH, 1.0)
ZH = Vocabulary.zipf(CHINESE, 0.9)


def order_number(rng: random.Random) -> str:
    return f"ORD-{rng.randrange(10000, 100000)}"


def _rare_token(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.6:
        return order_number(rng)
    if kind < 0.85:
        return f"INV-2026-{rng.randrange(1, 10000):04d}"
    return f"TCK-{rng.randrange(100000, 1000000)}"


def english_sentence(rng: random.Random, words: int) -> str:
    drawn = EN.draw(rng, words)
    if rng.random() < 0.06:  # an order number, an invoice, a ticket
        drawn.insert(rng.randrange(len(drawn) + 1), _rare_token(rng))
    if rng.random() < 0.03:  # a Chinese word in English text ("Kyoto 京都 trip")
        drawn.insert(rng.randrange(len(drawn) + 1), ZH.draw(rng, 1)[0])
    drawn[0] = drawn[0].capitalize()
    return " ".join(drawn) + rng.choice(".....?!")


def chinese_sentence(rng: random.Random, words: int) -> str:
    drawn = ZH.draw(rng, words)
    if rng.random() < 0.3:
        drawn.insert(0, rng.choice(CHINESE_GLUE))
    if rng.random() < 0.05:
        drawn.insert(rng.randrange(len(drawn) + 1), " " + _rare_token(rng) + " ")
    if words > 5:  # a comma inside a long sentence
        drawn.insert(words // 2, "，")
    return "".join(drawn) + rng.choice("。。。？！")


def text(rng: random.Random, lang: str, words: int) -> str:
    """About ``words`` words of chat in ``lang`` ("en", "zh" or "mixed"), in sentences."""
    sentences: list[str] = []
    left = words
    while left > 0:
        n = min(left, rng.randint(4, 16))
        if lang == "zh" or (lang == "mixed" and rng.random() < 0.5):
            sentences.append(chinese_sentence(rng, max(2, n // 2)))
        else:
            sentences.append(english_sentence(rng, n))
        left -= n
    return ("" if lang == "zh" else " ").join(sentences)


def title(rng: random.Random, lang: str) -> str:
    if lang == "zh":
        return "".join(ZH.draw(rng, rng.randint(2, 4)))
    words = EN.draw(rng, rng.randint(2, 6))
    return " ".join(words).capitalize()
