"""Make a synthetic chat export whose buyer turns are like real ones: they rarely repeat.

Conversations of 2–10 turns with ids and timestamps; seller turns from typical replies; buyer turns:
about a quarter are exact repeats of short stock phrases (好的, 在吗, 谢谢 …), the rest are distinct —
a message of our corpus (written chat turns, real reviews) with the small variations real buyers add
(an opener, a particle, a number, an order number, a product name, a second sentence), never the
same string twice. ``--unique`` makes every buyer turn distinct (no stock phrases at all).

    python benchmarks/make_export.py --rows 1000000 -o benchmarks/out/export.csv
    python benchmarks/make_export.py --rows 300 --encoding gb18030 -o data/examples/chat_export_gb18030.csv
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifier.training import load_corpus  # noqa: E402

SELLER_REPLIES = [
    "亲，在的，请问有什么可以帮您", "好的亲，马上为您查询", "亲，已经为您备注了哦", "稍等一下哈，我看看物流",
    "非常抱歉给您带来不便", "亲可以拍个照片给我们看看吗", "这边已经给您登记了，仓库会尽快处理", "亲，48小时内发货的哦",
    "默认发中通，需要顺丰的话补差价就可以", "亲，这款是正品，支持专柜验货", "尺码建议您拍L码", "好的呢，感谢您的支持",
    "亲，退货地址发您了，请注意查收", "已经帮您申请退款了，请留意", "亲，实在抱歉，我们马上给您补发", "有什么问题随时联系我们哦",
    "您好，欢迎光临本店", "这个价格已经是最低了哦亲", "亲，可以领取店铺优惠券再下单", "快递显示已经到您那边的驿站了",
    "我们会反馈给快递公司的", "亲，这边给您申请一个小补偿", "好的，已经改好地址了", "这边帮您催一下快递",
]
STOCK = ["好的", "在吗", "谢谢", "嗯嗯", "好的谢谢", "收到", "ok", "亲 在吗", "你好", "嗯", "好", "谢谢亲", "[微笑]",
         "在不在", "哦哦", "知道了", "好滴", "麻烦了", "?", "1"]
OPENERS = ["", "", "", "亲，", "你好，", "在吗 ", "客服 ", "喂 ", "老板，", "亲亲 "]
ENDINGS = ["", "", "", "？", "。", "!!", "呀", "啊", "哦", " [撇嘴]", " 谢谢", "～", "。。。"]
PRODUCTS = ["那件外套", "这个杯子", "洗发水", "耳机", "那双鞋", "充电宝", "床单", "猕猴桃", "牛奶", "键盘", "口红", "台灯"]


def _variant(text: str, rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.35:
        text = rng.choice(OPENERS) + text + rng.choice(ENDINGS)
    elif kind < 0.55:
        text = f"{text} 订单号{rng.randrange(10**15, 10**16)}"
    elif kind < 0.7:
        text = f"{rng.choice(PRODUCTS)} {text}"
    elif kind < 0.85:
        text = f"{text} 都{rng.randint(2, 15)}天了" if rng.random() < 0.5 else f"{text} 买了{rng.randint(1, 5)}个"
    return text


def build(rows: int, seed: int, unique: bool = False) -> list[list[str]]:
    rng = random.Random(seed)
    corpus = load_corpus([ROOT / "data" / "messages", ROOT / "data" / "real"])
    chat = corpus[corpus["kind"] == "chat"]["text"].tolist()
    other = corpus[corpus["kind"] != "chat"]["text"].tolist()
    seen: set[str] = set()
    start = dt.datetime(2026, 11, 1, 8, 0, 0)
    out, conversation = [], 0
    while len(out) < rows:
        conversation += 1
        when = start + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 25))
        session = f"S{conversation:08d}"
        for turn in range(rng.randint(2, 10)):
            buyer = turn % 2 == 0 or rng.random() < 0.3
            if not buyer:
                text = rng.choice(SELLER_REPLIES)
            elif not unique and rng.random() < 0.25:
                text = rng.choice(STOCK)
            else:
                base = rng.choice(chat) if rng.random() < 0.8 else rng.choice(other)
                text = base if base not in seen else _variant(base, rng)
                while text in seen:
                    text = _variant(text, rng)
                seen.add(text)
            when += dt.timedelta(seconds=rng.randint(5, 600))
            out.append([session, when.strftime("%Y-%m-%d %H:%M:%S"), "买家" if buyer else "客服", text])
            if len(out) == rows:
                break
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoding", default="utf-8")
    parser.add_argument("--unique", action="store_true", help="every buyer turn distinct (no stock phrases)")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    with open(args.output, "w", encoding=args.encoding, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["会话ID", "时间", "发送方", "聊天内容"])
        writer.writerows(build(args.rows, args.seed, args.unique))


if __name__ == "__main__":
    main()
