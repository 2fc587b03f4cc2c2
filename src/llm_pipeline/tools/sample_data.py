"""Deterministic sample data for the customer service of Northwind Outfitters, a fictional shop.

The project ships without real data, so this writes a small but consistent raw data set
(knowledge base, support conversations, preference pairs, validation set) into
``data/01_raw``. Every answer is grounded in one fixed set of invented facts, so a tiny model
visibly learns them; validation questions use phrasings that never occur in training data.
Standard library only, so it imports fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SHOP = "Northwind Outfitters"
SUPPORT_EMAIL = "support@northwind-outfitters.example"


@dataclass(frozen=True)
class Intent:
    """One thing customers ask about, with its facts, answer and question templates."""

    key: str
    context: str
    answer: str
    wrong: str
    train: tuple[str, ...]
    held_out: tuple[str, ...]


@dataclass(frozen=True)
class Topic:
    """A knowledge-base topic: one document and the intents it answers."""

    key: str
    title: str
    fmt: str
    intro: str
    intents: tuple[Intent, ...]


@dataclass(frozen=True)
class Product:
    """A catalogue item, used for product sheets and to fill question slots."""

    name: str
    slot: str
    price: str
    description: str
    specs: tuple[str, ...]


@dataclass(frozen=True)
class Sizes:
    """How many rows each output file gets at one scale."""

    chats: int
    emails: int
    preferences: int
    validation: int


SCALES: dict[str, Sizes] = {
    "default": Sizes(chats=640, emails=140, preferences=360, validation=100),
    "small": Sizes(chats=96, emails=24, preferences=60, validation=24),
}

NAMES = (
    "Maya", "Liam", "Sofia", "Noah", "Aisha", "Lucas", "Hannah", "Mateo", "Priya", "Ethan",
    "Chloe", "Omar", "Emma", "Kenji", "Grace", "Diego", "Olivia", "Ravi", "Zoe", "Jonas",
    "Amara", "Felix", "Isla", "Tomás", "Leah", "Samuel", "Nora", "Arjun", "Ruby", "Mikael",
    "Elena", "Kwame", "Ingrid", "Hugo", "Yuki", "Caleb", "Fatima", "Owen", "Lena", "Marco",
)  # fmt: skip

COUNTRIES = (
    ("Canada", "$14.95", "5-8"),
    ("the United Kingdom", "$24.95", "7-12"),
    ("Germany", "$24.95", "7-12"),
    ("France", "$24.95", "7-12"),
    ("the Netherlands", "$24.95", "7-12"),
    ("Ireland", "$24.95", "7-12"),
    ("Spain", "$24.95", "7-12"),
    ("Sweden", "$24.95", "7-12"),
    ("Australia", "$34.95", "10-15"),
    ("Japan", "$34.95", "10-15"),
    ("New Zealand", "$34.95", "10-15"),
    ("Singapore", "$34.95", "10-15"),
)

PRODUCTS = (
    Product(
        "Ridgeline 2 Tent",
        "tent",
        "$289",
        "A light two-person backpacking tent with two doors and two vestibules. It pitches in "
        "about five minutes and packs down small enough to strap under a backpack lid.",
        ("Weight: 1.9 kg", "Floor area: 2.8 m²", "Waterproof rating: 3,000 mm", "Poles: aluminium"),
    ),
    Product(
        "Summit Dome 4 Tent",
        "tent",
        "$449",
        "A four-person, three-season family dome tent with a full rain fly and a large porch "
        "for muddy boots. Colour-coded poles make pitching easy, even in the rain.",
        (
            "Weight: 4.6 kg",
            "Floor area: 5.9 m²",
            "Waterproof rating: 4,000 mm",
            "Peak height: 1.8 m",
        ),
    ),
    Product(
        "Stormbreak Rain Jacket",
        "jacket",
        "$179",
        "A fully waterproof and breathable three-layer shell with taped seams, an adjustable "
        "hood and pit zips for ventilation on steep climbs.",
        ("Weight: 380 g", "Sizes: XS-XXL", "Waterproof rating: 20,000 mm", "Fit: regular"),
    ),
    Product(
        "Alpine Down Jacket",
        "jacket",
        "$249",
        "A warm, packable jacket filled with responsibly sourced 700-fill down. The outer "
        "fabric has a water-repellent finish and the jacket packs into its own pocket.",
        ("Weight: 410 g", "Sizes: XS-XXL", "Fill: 700-fill-power down", "Fit: regular"),
    ),
    Product(
        "Trailmaster Hiking Boots",
        "boots",
        "$189",
        "Waterproof leather hiking boots with a grippy rubber sole and good ankle support for "
        "long days on rough trails. Available in regular and wide fit.",
        ("Weight: 1.3 kg per pair", "Sizes: US 5-14", "Upper: waxed leather", "Fit: regular, wide"),
    ),
    Product(
        "Granite Mid Boots",
        "boots",
        "$159",
        "Lighter mid-height boots for day hikes, with a waterproof membrane, a cushioned "
        "midsole and a quick lacing system.",
        (
            "Weight: 1.0 kg per pair",
            "Sizes: US 5-14",
            "Upper: nubuck leather and mesh",
            "Fit: regular",
        ),
    ),
    Product(
        "Polar Dream Sleeping Bag",
        "sleeping_bag",
        "$229",
        "A mummy-shaped down sleeping bag for cold nights, with a draft collar, a shaped hood "
        "and a full-length two-way zipper.",
        ("Weight: 1.2 kg", "Comfort limit: -10°C (14°F)", "Fill: 650-fill-power down"),
    ),
    Product(
        "Campfire Synthetic Sleeping Bag",
        "sleeping_bag",
        "$119",
        "A roomy synthetic sleeping bag for summer camping that stays warm when damp and can "
        "be unzipped into a blanket.",
        ("Weight: 1.6 kg", "Comfort limit: 5°C (41°F)", "Fill: synthetic fibre"),
    ),
    Product(
        "Cascade 45L Backpack",
        "backpack",
        "$169",
        "A 45-litre trekking pack with an adjustable back system, padded hip belt, rain cover "
        "and side pockets that you can reach while walking.",
        ("Weight: 1.4 kg", "Volume: 45 litres", "Warranty: lifetime"),
    ),
    Product(
        "Switchback 28L Daypack",
        "backpack",
        "$99",
        "A 28-litre daypack with a ventilated mesh back panel, a hydration sleeve and a "
        "padded laptop pocket for the commute.",
        ("Weight: 0.8 kg", "Volume: 28 litres", "Warranty: lifetime"),
    ),
    Product(
        "Trekker Carbon Poles",
        "gear",
        "$129",
        "A pair of three-section carbon trekking poles with cork grips and quick flick locks.",
        ("Weight: 460 g per pair", "Length: 105-135 cm", "Tips: tungsten carbide"),
    ),
    Product(
        "Ember Camp Stove",
        "gear",
        "$79",
        "A compact gas stove that boils a litre of water in about four minutes and folds "
        "down to fit inside most cooking pots.",
        ("Weight: 85 g", "Fuel: screw-on gas canister", "Output: 2,600 W"),
    ),
    Product(
        "Lumen 400 Headlamp",
        "gear",
        "$39",
        "A rechargeable 400-lumen headlamp with a red night mode and a battery that lasts up "
        "to 40 hours on the lowest setting.",
        ("Weight: 78 g", "Charging: USB-C", "Water resistance: IPX4"),
    ),
    Product(
        "Merino Base Layer Top",
        "gear",
        "$69",
        "A soft, breathable merino wool base layer that keeps you warm and resists odour on "
        "multi-day trips.",
        ("Weight: 180 g", "Sizes: XS-XXL", "Fabric: 100% merino wool"),
    ),
)

# Slot values that render the knowledge-base examples; fixed so documents never depend on the seed.
DEFAULT_SLOTS = {
    "name": "Maya",
    "friend": "Liam",
    "order": "NW-48213",
    "product": "Cascade 45L Backpack",
    "tent": "Ridgeline 2 Tent",
    "jacket": "Stormbreak Rain Jacket",
    "boots": "Trailmaster Hiking Boots",
    "sleeping_bag": "Polar Dream Sleeping Bag",
    "backpack": "Cascade 45L Backpack",
    "country": "Canada",
    "intl_cost": "$14.95",
    "intl_days": "5-8",
}

_PAYMENT = (
    "We accept Visa, Mastercard, American Express, Discover, PayPal, Apple Pay, Google Pay and "
    "Northwind gift cards. We do not accept cash on delivery or cheques. Your card is charged "
    "when your order ships, not when you place it, and backordered items are charged only when "
    "they ship."
)
_GIFT_CARDS = (
    "Northwind digital gift cards are available from $25 to $500 and are delivered by email "
    "within 1 hour. Gift cards never expire and cannot be exchanged for cash. You can use up to "
    "3 gift cards on one order and check a balance at northwind-outfitters.example/giftcards."
)
_ACCOUNT = (
    "To reset your password, click Forgot password on the sign-in page and enter your email "
    "address. The reset link is valid for 30 minutes; check your spam folder if it does not "
    "arrive. After 5 failed sign-in attempts your account is locked for 15 minutes. You do not "
    "need an account to order: guest checkout is available, but an account lets you follow "
    "orders under My Orders and earn Trail Rewards points."
)
_LOYALTY = (
    "Northwind Trail Rewards is free to join. Members earn 1 point for every $1 spent, and 100 "
    "points convert into a $5 reward. Members also get a $10 birthday reward. Points expire "
    "after 12 months without account activity; any purchase or reward redemption keeps them "
    "active."
)
_PRIVACY = (
    "We never sell your personal data. We use it to process orders and, only if you opt in, to "
    "send marketing emails. Card details are handled by our payment provider and we never "
    "store full card numbers. To get a copy of your data or have your account and data "
    "deleted, email privacy@northwind-outfitters.example; we respond within 30 days."
)
_NEWSLETTER = (
    "Subscribe to the Northwind newsletter at the bottom of any page to get 10% off your first "
    "order; the code arrives by email. We send at most two emails a week. You can unsubscribe "
    "with the link at the bottom of any email and you will still receive order and shipping "
    "updates."
)
_STORE = (
    "Our Portland flagship store at 214 Harbor Way is open Monday to Saturday from 10 am to "
    "7 pm and Sunday from 11 am to 5 pm. Choose Click & Collect at checkout to pick up an order "
    "there for free. Orders are usually ready within 2 hours during store hours and we hold "
    "them for 7 days; bring your order confirmation and a photo ID."
)
_BACKORDERS = (
    "Backordered items show an expected ship date on the product page. You are only charged "
    "when a backordered item ships, and the rest of your order ships right away at no extra "
    "shipping cost. You can cancel a backordered item at any time before it ships under My "
    "Orders or by emailing support@northwind-outfitters.example."
)

TOPICS: tuple[Topic, ...] = (
    Topic(
        "shipping",
        "Shipping Within the United States",
        "md",
        "Northwind Outfitters ships every order from its warehouse in Portland, Oregon. "
        "Customers in the United States can choose standard or express shipping at checkout.",
        (
            Intent(
                "standard_shipping",
                "Standard shipping within the United States costs $5.95 and is free on orders "
                "over $75. Standard orders arrive in 3-5 business days. Orders placed before "
                "2 pm Pacific time on a business day leave our Portland warehouse the same day.",
                "Standard shipping within the US costs $5.95 and is free on orders over $75. "
                "It usually arrives in 3-5 business days.",
                "Standard shipping costs $9.95 on every order and usually takes 7-10 business "
                "days.",
                (
                    "How much does standard shipping cost?",
                    "How long does standard delivery take?",
                    "What do you charge for regular shipping in the US?",
                    "Is shipping free if I spend enough?",
                    "I'm ordering the {product}. How long until it arrives with normal shipping?",
                ),
                (
                    "What's the minimum order for free delivery, and how many days does the "
                    "basic option take?",
                    "If I pick the cheapest shipping for my {product}, when should I expect it "
                    "and what will it cost me?",
                ),
            ),
            Intent(
                "express_shipping",
                "Express shipping within the United States costs $14.95 and arrives in 1-2 "
                "business days. Express orders placed before 2 pm Pacific time ship the same "
                "business day. Express shipping is not available to PO boxes.",
                "Express shipping costs $14.95 and arrives in 1-2 business days. Order before "
                "2 pm Pacific time and it ships the same day.",
                "Express shipping costs $29.95 and takes 3-5 business days.",
                (
                    "How much is express shipping?",
                    "Do you offer faster delivery?",
                    "I need my {product} quickly. What's your fastest shipping option?",
                    "How fast is express delivery?",
                    "Can I get next-day or express shipping?",
                ),
                (
                    "What would it cost to rush my package, and how soon would it get here?",
                    "Is there a speedier option than standard, and what is the cutoff time to "
                    "order?",
                ),
            ),
        ),
    ),
    Topic(
        "international_shipping",
        "International Shipping and Customs",
        "md",
        "We ship to Canada, the United Kingdom, the European Union, Australia, Japan, New Zealand "
        "and Singapore. Prices and delivery times depend on the shipping zone.",
        (
            Intent(
                "international_shipping",
                "We ship to Canada for $14.95 (5-8 business days), to the United Kingdom and "
                "the European Union for $24.95 (7-12 business days), and to Australia, Japan, "
                "New Zealand and Singapore for $34.95 (10-15 business days). Import duties and "
                "taxes are not included and are paid by the customer on delivery.",
                "Yes, we ship to {country}. Shipping costs {intl_cost} and takes {intl_days} "
                "business days; any import duties are paid on delivery.",
                "Sorry, we only ship within the United States, so we can't send orders to "
                "{country}.",
                (
                    "Do you ship to {country}?",
                    "How much is shipping to {country}?",
                    "I live in {country}. Can I order from you?",
                    "How long does delivery to {country} take?",
                    "Can you send the {product} to {country}?",
                ),
                (
                    "I'm based in {country} - what are the delivery fees and transit times for me?",
                    "Would an order to an address in {country} be possible, and how many days "
                    "would it be in transit?",
                ),
            ),
            Intent(
                "customs_duties",
                "Prices on our website do not include import duties or taxes for orders shipped "
                "outside the United States. These charges are set by the destination country "
                "and are collected by the carrier on delivery. If a parcel is refused because of "
                "duties, the return shipping cost is deducted from the refund.",
                "Import duties and taxes are not included in our prices for international "
                "orders. They are set by your country and collected by the carrier on delivery.",
                "All duties and taxes are already included in the price, so you will never pay "
                "anything extra.",
                (
                    "Do I have to pay customs fees?",
                    "Are import taxes included in the price?",
                    "Will I be charged duties on my order to {country}?",
                    "Who pays the customs charges on international orders?",
                ),
                (
                    "Is there anything extra to pay at the border when my parcel arrives in "
                    "{country}?",
                    "Does the checkout total already cover VAT and import fees for overseas "
                    "buyers?",
                ),
            ),
        ),
    ),
    Topic(
        "returns",
        "Returns and Refunds",
        "md",
        "We want you to love your gear. If something is not right, you can return it easily "
        "through our online returns portal.",
        (
            Intent(
                "return_window",
                "You can return unused items within 30 days of delivery for a full refund. "
                "Items must be in their original condition with tags and packaging. Returns "
                "within the United States are free using the prepaid label from our returns "
                "portal at northwind-outfitters.example/returns.",
                "You can return unused items within 30 days of delivery, with the original tags "
                "and packaging. US returns are free with the prepaid label from our returns "
                "portal at northwind-outfitters.example/returns.",
                "You have 14 days to return items, and return shipping costs $9.95.",
                (
                    "What is your return policy?",
                    "How many days do I have to return something?",
                    "Can I return the {product}? I haven't used it.",
                    "How do I send back an item?",
                    "I want to return order {order}. How do I do that?",
                ),
                (
                    "Is it too late to send back something I received three weeks ago?",
                    "What conditions does an item have to meet before you'll take it back?",
                ),
            ),
            Intent(
                "refund_timing",
                "Refunds are issued to the original payment method within 5 business days after "
                "your return arrives at our warehouse. Your bank may need another 3-5 business "
                "days to show the money. Original shipping costs are only refunded if the item "
                "was faulty or we made a mistake.",
                "We issue your refund to the original payment method within 5 business days of "
                "receiving the return. Your bank may take another 3-5 business days to show it.",
                "Refunds take about 30 days and are paid as store credit only.",
                (
                    "When will I get my refund?",
                    "How long do refunds take?",
                    "I sent back order {order}. When will I see the money?",
                    "Do you refund to my card or as store credit?",
                    "My return arrived at your warehouse. How long until the refund?",
                ),
                (
                    "How many days after you receive a returned parcel does the money come back "
                    "to me?",
                    "Where will the money for my returned purchase go, and how soon?",
                ),
            ),
            Intent(
                "refund_shipping",
                "Original shipping costs are only refunded if the item was faulty or we made a "
                "mistake. Returns within the United States are free with the prepaid label from "
                "our returns portal; international customers pay their own return postage.",
                "Original shipping costs are only refunded if the item was faulty or we made a "
                "mistake. Returns within the US are free with our prepaid label.",
                "We always refund the original shipping cost, and every return is free worldwide.",
                (
                    "Do you refund the shipping cost?",
                    "Will I get my shipping fee back if I return order {order}?",
                    "Is return shipping free?",
                    "Do I pay for the return label?",
                ),
                (
                    "If I send something back, do I lose the delivery charge I paid at checkout?",
                    "Who covers the postage when a customer mails an item back to you?",
                ),
            ),
        ),
    ),
    Topic(
        "exchanges",
        "Exchanges",
        "md",
        "Need a different size or colour? Exchanges are free and are handled through the same "
        "portal as returns.",
        (
            Intent(
                "exchange",
                "Exchanges for a different size or colour are free within 30 days of delivery. "
                "Start the exchange in the returns portal and choose Exchange instead of Refund. "
                "We ship the replacement as soon as the carrier scans your original parcel.",
                "Exchanges for a different size or colour are free within 30 days of delivery. "
                "Start one in the returns portal, choose Exchange, and we ship the new item as "
                "soon as the carrier scans your parcel.",
                "We don't do exchanges; you have to return the item and place a new order.",
                (
                    "Can I exchange my {jacket} for a different size?",
                    "How do exchanges work?",
                    "The {boots} are too small. Can I swap them for a bigger size?",
                    "Is there a fee to exchange an item?",
                    "I'd like a different colour of the {product}. Can I exchange it?",
                ),
                (
                    "I ordered the wrong size; what's the process for getting the right one "
                    "instead of a refund?",
                    "When do you send out the replacement if I trade my item for another size?",
                ),
            ),
        ),
    ),
    Topic(
        "payment",
        "Payment Methods",
        "md",
        "Checkout at Northwind Outfitters is secure and supports the most common cards and "
        "digital wallets.",
        (
            Intent(
                "payment_methods",
                _PAYMENT,
                "We accept Visa, Mastercard, American Express, Discover, PayPal, Apple Pay, "
                "Google Pay and Northwind gift cards. We don't accept cash on delivery or "
                "cheques.",
                "We only accept Visa and Mastercard.",
                (
                    "What payment methods do you accept?",
                    "Can I pay with PayPal?",
                    "Do you take American Express?",
                    "Can I pay cash on delivery?",
                    "Which cards can I use at checkout?",
                ),
                (
                    "Is Apple Pay an option, or am I limited to credit cards?",
                    "What are all the ways I could settle the bill for my {product}?",
                ),
            ),
            Intent(
                "when_charged",
                _PAYMENT,
                "Your card is charged when your order ships, not when you place it. For "
                "backordered items, we charge only when that item ships.",
                "We charge your card the moment you place the order, including for backordered "
                "items.",
                (
                    "When will my card be charged?",
                    "Why hasn't my payment gone through yet for order {order}?",
                    "Do you charge me when I order or when it ships?",
                    "I placed an order but haven't been charged. Is that normal?",
                ),
                (
                    "At what point does the money actually leave my account?",
                    "My bank statement shows nothing for {order} yet - should I worry?",
                ),
            ),
        ),
    ),
    Topic(
        "gift_cards",
        "Gift Cards",
        "md",
        "Northwind gift cards are a simple present for anyone who loves the outdoors.",
        (
            Intent(
                "gift_cards",
                _GIFT_CARDS,
                "Our digital gift cards range from $25 to $500 and arrive by email within 1 "
                "hour. They never expire, and you can use up to 3 on one order.",
                "Gift cards expire after 6 months and you can only use one per order.",
                (
                    "Do you sell gift cards?",
                    "Do your gift cards expire?",
                    "How long does it take for a gift card to arrive?",
                    "Can I use more than one gift card on an order?",
                    "What amounts do gift cards come in?",
                ),
                (
                    "I want to give my friend {friend} some store credit as a present - what are "
                    "the options?",
                    "Is there a time limit on using a voucher I got for my birthday?",
                ),
            ),
            Intent(
                "gift_card_balance",
                _GIFT_CARDS,
                "You can check your gift card balance at northwind-outfitters.example/giftcards. "
                "Gift cards can't be exchanged for cash, but they never expire.",
                "Gift card balances can only be checked by calling us, and you can cash them out "
                "at any time.",
                (
                    "How do I check my gift card balance?",
                    "Can I cash out my gift card?",
                    "Where can I see how much is left on my gift card?",
                ),
                (
                    "Is there a page that tells me what remains on the voucher code I received?",
                    "Could I get the remaining value of my card back as money?",
                ),
            ),
        ),
    ),
    Topic(
        "order_tracking",
        "Order Tracking",
        "md",
        "Every order can be followed from our warehouse to your door.",
        (
            Intent(
                "tracking",
                "When your order ships, we email you a tracking link, usually within 1 business "
                "day of ordering. You can also follow every order under My Orders in your "
                "account. Tracking updates can take up to 24 hours to appear after the carrier "
                "picks up the parcel.",
                "We email a tracking link as soon as your order ships, usually within 1 business "
                "day, and you can also follow it under My Orders in your account. Tracking can "
                "take up to 24 hours to update after pickup.",
                "We don't provide tracking numbers, so you'll just have to wait for the parcel.",
                (
                    "Where is my order {order}?",
                    "How can I track my order?",
                    "I haven't received a tracking number for {order}.",
                    "My tracking link for {order} shows no updates. Why?",
                    "Can I see where my package is?",
                ),
                (
                    "Is there a way to follow the progress of parcel {order} on its way to me?",
                    "It's been a day since the shipping email and the carrier page for {order} "
                    "is still blank - is that normal?",
                ),
            ),
            Intent(
                "missing_delivery",
                "If tracking shows your parcel as delivered but you cannot find it, wait 48 "
                "hours, because carriers sometimes mark parcels as delivered early, and check "
                "with your neighbours. If it still has not turned up, contact us with your order "
                "number; we open a carrier investigation and send a replacement or a refund "
                "within 5 business days.",
                "Please wait 48 hours, as carriers sometimes mark parcels delivered early, and "
                "check with your neighbours. If it still hasn't turned up, send us your order "
                "number and we'll send a replacement or refund within 5 business days.",
                "Once the carrier says it's delivered, there's nothing we can do.",
                (
                    "My tracking says delivered but I didn't get it.",
                    "Order {order} shows as delivered but it's not here.",
                    "My package is missing.",
                    "What if my parcel was stolen?",
                ),
                (
                    "The courier claims {order} was dropped off yesterday, yet nothing is at my "
                    "door - what now?",
                    "The app says my package arrived but I can't find it anywhere.",
                ),
            ),
        ),
    ),
    Topic(
        "order_changes",
        "Cancelling or Changing an Order",
        "md",
        "Orders move quickly through our warehouse, so changes are easiest right after you order.",
        (
            Intent(
                "cancel_order",
                "You can cancel an order yourself within 1 hour of placing it under My Orders in "
                "your account. After 1 hour the order is being packed, so contact "
                "support@northwind-outfitters.example and we will try to stop it. Once an order "
                "has shipped it cannot be cancelled, but you can return it within 30 days.",
                "You can cancel within 1 hour of placing the order under My Orders in your "
                "account. After that, email support@northwind-outfitters.example and we'll try "
                "to stop it; once it has shipped, you can return it within 30 days.",
                "Orders can't be cancelled once they are placed.",
                (
                    "How do I cancel my order?",
                    "Can I cancel order {order}?",
                    "I ordered the {product} by mistake. Can I cancel it?",
                    "I placed order {order} two hours ago and want to cancel. Is that possible?",
                    "Is it too late to cancel my order?",
                ),
                (
                    "I changed my mind right after checking out - how do I stop purchase {order} "
                    "from going through?",
                    "What are my options if I no longer want an order that has already left "
                    "your warehouse?",
                ),
            ),
            Intent(
                "change_order",
                "You can change the shipping address or the items on an order within 1 hour of "
                "placing it under My Orders. After that, email "
                "support@northwind-outfitters.example with your order number and we will do our "
                "best before the parcel leaves. We cannot redirect parcels once they have "
                "shipped.",
                "You can change the address or items on your order within 1 hour of placing it "
                "under My Orders. After that, email support@northwind-outfitters.example with "
                "your order number and we'll try to update it before it ships.",
                "You can change the address at any time, even after the parcel has shipped.",
                (
                    "Can I change the shipping address on order {order}?",
                    "I entered the wrong address. What should I do?",
                    "How do I update the delivery address on my order?",
                    "Can I add an item to order {order}?",
                ),
                (
                    "I typed my old street on {order} by accident - can you fix where it's going?",
                    "Is it possible to edit what's in my purchase after I've paid?",
                ),
            ),
        ),
    ),
    Topic(
        "account",
        "Your Account and Password",
        "md",
        "A Northwind account keeps your orders, addresses and Trail Rewards points in one place.",
        (
            Intent(
                "password_reset",
                _ACCOUNT,
                "Click Forgot password on the sign-in page and enter your email; the reset link "
                "is valid for 30 minutes. If it doesn't arrive, please check your spam folder.",
                "Just create a new account with a different email address.",
                (
                    "I forgot my password.",
                    "How do I reset my password?",
                    "The password reset email never arrived.",
                    "I can't log in to my account.",
                    "My reset link doesn't work anymore.",
                ),
                (
                    "I no longer remember how to sign in to my Northwind profile - what should I "
                    "do?",
                    "How long can I use the link you send when I need new login credentials?",
                ),
            ),
            Intent(
                "account_locked",
                _ACCOUNT,
                "After 5 failed sign-in attempts, your account is locked for 15 minutes for "
                "security. Wait 15 minutes and then use Forgot password on the sign-in page if "
                "needed.",
                "Your account is locked permanently after 3 failed attempts, so you'll need a "
                "new one.",
                (
                    "My account is locked.",
                    "Why can't I sign in after typing my password wrong several times?",
                    "How long is my account locked for?",
                ),
                (
                    "It says too many attempts and won't let me in - when can I try again?",
                    "I keep getting blocked at the login screen after a few tries, what's going "
                    "on?",
                ),
            ),
            Intent(
                "guest_checkout",
                _ACCOUNT,
                "No, you can check out as a guest. An account lets you follow your orders under "
                "My Orders and earn Trail Rewards points.",
                "Yes, you must create an account and pay a $5 sign-up fee before ordering.",
                (
                    "Do I need an account to order?",
                    "Can I check out as a guest?",
                    "Why should I create an account?",
                ),
                (
                    "Is registering mandatory, or can I just buy the {product} without signing up?",
                    "What's the benefit of making a profile with you versus buying anonymously?",
                ),
            ),
        ),
    ),
    Topic(
        "warranty",
        "Warranty",
        "md",
        "We design our gear to last for years of adventures and stand behind it with a clear "
        "warranty.",
        (
            Intent(
                "warranty",
                "All Northwind-brand products have a 2-year warranty against manufacturing "
                "defects, and Northwind backpacks have a lifetime warranty. Normal wear and "
                "tear, accidents and misuse are not covered. To make a claim, email photos and "
                "your order number to warranty@northwind-outfitters.example; we reply within 3 "
                "business days.",
                "Northwind-brand products have a 2-year warranty against manufacturing defects, "
                "and our backpacks have a lifetime warranty. Normal wear and tear and accidents "
                "are not covered.",
                "Our products come with a 90-day warranty that covers any damage, including "
                "accidents.",
                (
                    "What warranty do your products have?",
                    "Is the {product} covered by a warranty?",
                    "How long is the warranty on the {backpack}?",
                    "Does the warranty cover wear and tear?",
                    "Do your tents have a warranty?",
                ),
                (
                    "For how many years are you responsible if my gear fails because of a "
                    "factory fault?",
                    "If I rip my {jacket} on a branch, will you fix it for free under guarantee?",
                ),
            ),
            Intent(
                "warranty_claim",
                "To make a warranty claim, email photos of the problem and your order number to "
                "warranty@northwind-outfitters.example. We reply to every claim within 3 "
                "business days and repair or replace items with a manufacturing defect.",
                "Email photos of the problem and your order number to "
                "warranty@northwind-outfitters.example. We reply to every claim within 3 "
                "business days.",
                "Warranty claims must be sent by post with the original receipt and take about "
                "two months.",
                (
                    "How do I make a warranty claim?",
                    "The zipper on my {tent} broke after a month. What do I do?",
                    "The sole of my {boots} is coming off. How do I claim the warranty?",
                    "Where do I send a warranty request?",
                ),
                (
                    "What information do you need from me to report a defect, and where should "
                    "it go?",
                    "A seam on my {backpack} split - who do I contact to get it sorted under "
                    "guarantee?",
                ),
            ),
        ),
    ),
    Topic(
        "repairs",
        "Repair Service",
        "md",
        "Repairing gear keeps it out of landfill. Our Portland workshop fixes most common "
        "problems.",
        (
            Intent(
                "repairs",
                "Our repair workshop fixes zippers, tent poles, seams and buckles. Repairs are "
                "free for defects covered by the warranty; other repairs start at $15. Repairs "
                "take 2-3 weeks, and you can start one at northwind-outfitters.example/repairs.",
                "Our workshop repairs zippers, tent poles, seams and buckles, free for warranty "
                "defects and from $15 otherwise. Repairs take 2-3 weeks; start one at "
                "northwind-outfitters.example/repairs.",
                "We don't repair anything; you'll need to buy a new one.",
                (
                    "Do you repair gear?",
                    "Can you fix a broken tent pole?",
                    "How much does a repair cost?",
                    "How long does a repair take?",
                    "The zipper on my {jacket} is stuck. Can you repair it?",
                ),
                (
                    "My old pack has a snapped buckle and it's out of warranty - is mending it "
                    "something you offer?",
                    "What's the turnaround and price to have a seam restitched by your workshop?",
                ),
            ),
        ),
    ),
    Topic(
        "care_tents",
        "Tent Care",
        "txt",
        "A well cared for tent lasts for many seasons. Follow these steps after every trip.",
        (
            Intent(
                "care_tents",
                "Always dry your tent completely before storing it, otherwise mildew can form "
                "within days. Clean it by hand with lukewarm water and a mild soap; never "
                "machine wash it or use detergent. Store it loosely in a cool, dry place and "
                "re-seal the seams every two seasons.",
                "Dry your {tent} completely before storing it, and clean it by hand with "
                "lukewarm water and a mild soap, never in a washing machine. Store it loosely in "
                "a cool, dry place.",
                "Just put the tent in the washing machine on a hot cycle and pack it away right "
                "after.",
                (
                    "How do I clean my {tent}?",
                    "Can I machine wash my tent?",
                    "How should I store my tent after a trip?",
                    "My {tent} got wet. Can I pack it away?",
                    "How do I stop my tent from getting mildew?",
                ),
                (
                    "What's the best way to look after a shelter between camping trips?",
                    "After a rainy weekend, what should I do with my {tent} before putting it in "
                    "the garage?",
                ),
            ),
        ),
    ),
    Topic(
        "care_jackets",
        "Jacket Care",
        "txt",
        "Waterproof jackets need a little care to stay waterproof and breathable.",
        (
            Intent(
                "care_jackets",
                "Machine wash waterproof jackets at 30°C (86°F) with a technical wash and no "
                "fabric softener. Tumble dry on low for 20 minutes to reactivate the "
                "water-repellent finish. When water stops beading on the surface, re-proof the "
                "jacket with a spray-on treatment.",
                "Wash your {jacket} at 30°C (86°F) with a technical wash and no fabric softener, "
                "then tumble dry on low for 20 minutes to reactivate the water repellency. If "
                "water still soaks in, re-proof it with a spray-on treatment.",
                "Wash it at 60°C with regular detergent and fabric softener, and never put it in "
                "the dryer.",
                (
                    "How do I wash my {jacket}?",
                    "Can I use fabric softener on my rain jacket?",
                    "My {jacket} isn't waterproof anymore. What can I do?",
                    "What temperature should I wash my jacket at?",
                    "Can I put my jacket in the dryer?",
                ),
                (
                    "Rain is soaking into the shell I bought last year - how do I restore it?",
                    "What laundry routine keeps a waterproof coat performing well?",
                ),
            ),
        ),
    ),
    Topic(
        "care_boots",
        "Boot Care",
        "txt",
        "Clean, dry and conditioned boots stay comfortable and waterproof for longer.",
        (
            Intent(
                "care_boots",
                "After every hike, brush off dirt and mud and remove the insoles. Let boots air "
                "dry at room temperature, away from heaters, fires and direct sunlight, which "
                "can crack leather and weaken glue. Treat leather boots with wax every few "
                "months to keep them waterproof.",
                "Brush off the dirt after each hike, take out the insoles and let your {boots} "
                "air dry at room temperature, away from heaters. Treat the leather with wax "
                "every few months to keep them waterproof.",
                "Dry your boots quickly next to a fire or heater; they don't need any other care.",
                (
                    "How do I clean my {boots}?",
                    "Can I dry my boots on a heater?",
                    "How do I keep my hiking boots waterproof?",
                    "My {boots} are soaked. How should I dry them?",
                    "How often should I wax my leather boots?",
                ),
                (
                    "What's the right way to care for footwear after a muddy trail?",
                    "Is it okay to leave wet trekking shoes by the fireplace overnight?",
                ),
            ),
        ),
    ),
    Topic(
        "care_sleeping_bags",
        "Sleeping Bag Care",
        "txt",
        "How you store and wash a sleeping bag decides how warm it stays.",
        (
            Intent(
                "care_sleeping_bags",
                "Store sleeping bags uncompressed in the large cotton storage sack, never in the "
                "small stuff sack. Wash a sleeping bag at most once or twice a year on a gentle "
                "cycle, with a down wash for down bags and a technical wash for synthetic ones. "
                "Tumble dry on low with 2-3 clean tennis balls to restore the loft, and air the "
                "bag out after every trip.",
                "Store your {sleeping_bag} uncompressed in the large cotton storage sack, not "
                "the stuff sack. Wash it at most once or twice a year on a gentle cycle, then "
                "tumble dry on low with 2-3 clean tennis balls to restore the loft.",
                "Keep it tightly packed in the stuff sack and wash it after every trip with "
                "normal detergent.",
                (
                    "How do I wash my {sleeping_bag}?",
                    "How should I store my sleeping bag?",
                    "Can I keep my sleeping bag in the stuff sack?",
                    "My down sleeping bag lost its puffiness. What do I do?",
                    "How often should I wash a down sleeping bag?",
                ),
                (
                    "What's the right way to keep my bag lofty between seasons?",
                    "Is it fine to launder a down-filled bag, and how do I get it fluffy again "
                    "afterwards?",
                ),
            ),
        ),
    ),
    Topic(
        "size_guide_clothing",
        "Size Guide: Jackets and Tops",
        "txt",
        "Use this guide to choose the right size for jackets, fleeces and base layers.",
        (
            Intent(
                "size_clothing",
                "Our jackets and tops come in sizes XS to XXL. Measure around the fullest part "
                "of your chest: S fits 36-38 in, M fits 39-41 in, L fits 42-44 in and XL fits "
                "45-47 in. If you are between sizes or plan to layer underneath, choose the "
                "larger size.",
                "Measure around the fullest part of your chest: S fits 36-38 in, M 39-41 in, L "
                "42-44 in and XL 45-47 in. If you're between sizes or want to layer underneath, "
                "go one size up.",
                "All our jackets are one size fits all.",
                (
                    "What size {jacket} should I get?",
                    "How do your jacket sizes run?",
                    "I'm between a medium and a large. Which should I order?",
                    "Do you have a size chart for jackets?",
                    "What chest size is a medium?",
                ),
                (
                    "My chest measures 40 inches - which shell size suits me?",
                    "How should I choose a coat size if I'll wear a fleece under it?",
                ),
            ),
        ),
    ),
    Topic(
        "size_guide_boots",
        "Size Guide: Boots",
        "txt",
        "A good fit prevents blisters. Here is how our boots are sized.",
        (
            Intent(
                "size_boots",
                "Our boots use US sizes and run true to size. If you are between sizes or have "
                "wide feet, order a half size up; the Trailmaster Hiking Boots also come in a "
                "wide fit. Try boots on in the afternoon with the socks you will hike in.",
                "Our boots run true to US sizes. If you're between sizes or have wide feet, go a "
                "half size up; the Trailmaster Hiking Boots also come in a wide fit.",
                "Our boots run small, so order two full sizes up.",
                (
                    "Do your boots run true to size?",
                    "What size {boots} should I order?",
                    "I have wide feet. Which boots should I get?",
                    "I'm between sizes. Should I size up for boots?",
                    "Do you have wide-fit hiking boots?",
                ),
                (
                    "How does your footwear sizing compare with my usual sneaker number?",
                    "My feet are broad - will your trekking shoes fit, or do I need a bigger "
                    "number?",
                ),
            ),
        ),
    ),
    Topic(
        "store",
        "Portland Store and Click & Collect",
        "md",
        "Visit our flagship store in Portland, Oregon, or collect your online order there.",
        (
            Intent(
                "store_pickup",
                _STORE,
                "Yes, choose Click & Collect at checkout to pick up your order for free at our "
                "Portland store, 214 Harbor Way. It's usually ready within 2 hours, and we hold "
                "it for 7 days; bring your order confirmation and photo ID.",
                "We don't offer in-store pickup; everything has to be shipped.",
                (
                    "Can I pick up my order in store?",
                    "Do you offer click and collect?",
                    "How long will you hold my order {order} for pickup?",
                    "What do I need to bring to collect my order?",
                    "When will my pickup order be ready?",
                ),
                (
                    "Instead of delivery, could I grab my {product} from your shop myself?",
                    "If I can't come in straight away, how many days will the collection order "
                    "wait for me?",
                ),
            ),
            Intent(
                "store_hours",
                _STORE,
                "Our Portland store at 214 Harbor Way is open Monday to Saturday from 10 am to "
                "7 pm and on Sunday from 11 am to 5 pm.",
                "The store is open 24 hours a day, every day.",
                (
                    "What are your store hours?",
                    "Is your Portland store open on Sunday?",
                    "Where is your store?",
                    "When does the shop close on Saturday?",
                ),
                (
                    "What time can I visit the Harbor Way location at the weekend?",
                    "Do you have a physical shop I could walk into, and when?",
                ),
            ),
        ),
    ),
    Topic(
        "price_match",
        "Price Match Promise",
        "md",
        "If you find the same item cheaper at an authorised retailer, we will match the price.",
        (
            Intent(
                "price_match",
                "We match a lower price from an authorised US retailer on an identical, in-stock "
                "item within 14 days of your purchase and refund the difference. Price matching "
                "does not apply to marketplace sellers, clearance items or flash sales. Send a "
                "link to the lower price to support@northwind-outfitters.example.",
                "We match lower prices from authorised US retailers on identical, in-stock items "
                "within 14 days of purchase and refund the difference. It doesn't apply to "
                "marketplace sellers, clearance or flash sales.",
                "We never match prices.",
                (
                    "Do you price match?",
                    "I found the {product} cheaper elsewhere. Can you match it?",
                    "I bought order {order} last week and now it's cheaper at another store. "
                    "Can I get the difference?",
                    "What is your price match policy?",
                    "Do you match Amazon marketplace prices?",
                ),
                (
                    "Another authorised retailer is selling my {product} for less - will you "
                    "cover the gap?",
                    "Is there a time limit for claiming back a price difference after buying?",
                ),
            ),
        ),
    ),
    Topic(
        "loyalty",
        "Trail Rewards Loyalty Programme",
        "md",
        "Trail Rewards thanks our regular customers with points on every purchase.",
        (
            Intent(
                "loyalty",
                _LOYALTY,
                "Trail Rewards is free to join: you earn 1 point per $1 spent, and 100 points "
                "become a $5 reward. Members also get a $10 birthday reward.",
                "Our loyalty programme costs $49 a year and you earn 1 point for every $10.",
                (
                    "Do you have a loyalty program?",
                    "How do Trail Rewards points work?",
                    "How many points do I get per dollar?",
                    "Is there a birthday reward for members?",
                    "How much does it cost to join Trail Rewards?",
                ),
                (
                    "What perks do regular customers get for shopping with you often?",
                    "How much do I have to spend before points turn into money off?",
                ),
            ),
            Intent(
                "points_expiry",
                _LOYALTY,
                "Trail Rewards points expire after 12 months without any account activity. Any "
                "purchase or reward redemption keeps them active.",
                "Points expire 30 days after you earn them, no matter what.",
                (
                    "Do my rewards points expire?",
                    "I haven't shopped in a while. Will I lose my points?",
                    "How long are Trail Rewards points valid?",
                ),
                (
                    "Is there a deadline before my collected points vanish?",
                    "What keeps my loyalty balance from being wiped?",
                ),
            ),
        ),
    ),
    Topic(
        "privacy",
        "Privacy Policy",
        "md",
        "This summary explains what personal data we keep and how you stay in control of it.",
        (
            Intent(
                "data_use",
                _PRIVACY,
                "We never sell your personal data; we use it to process orders and, only if you "
                "opt in, to send marketing emails. Card details are handled by our payment "
                "provider, and we never store full card numbers.",
                "We share customer data with selected partners for advertising.",
                (
                    "Do you sell my data?",
                    "What do you do with my personal information?",
                    "Do you store my credit card number?",
                    "Is my payment information safe?",
                ),
                (
                    "Will my details end up with third-party advertisers if I shop with you?",
                    "Does Northwind keep my full card number on file?",
                ),
            ),
            Intent(
                "data_delete",
                _PRIVACY,
                "Email privacy@northwind-outfitters.example to get a copy of your data or to "
                "have your account and data deleted. We respond within 30 days.",
                "Deleting your account isn't possible.",
                (
                    "How do I delete my account?",
                    "Can I get a copy of my personal data?",
                    "I want you to erase my data.",
                    "How do I close my Northwind account?",
                ),
                (
                    "What's the procedure for having my profile and all stored information "
                    "removed?",
                    "Who should I write to for an export of everything you hold about me?",
                ),
            ),
        ),
    ),
    Topic(
        "newsletter",
        "Newsletter and Marketing Emails",
        "md",
        "Our newsletter brings trip ideas, gear tips and offers to your inbox.",
        (
            Intent(
                "newsletter_signup",
                _NEWSLETTER,
                "Sign up for our newsletter at the bottom of any page and we'll email you a code "
                "for 10% off your first order. We send at most two emails a week.",
                "Our newsletter has no sign-up offer, and we email subscribers every day.",
                (
                    "Do you have a newsletter?",
                    "Is there a discount for signing up?",
                    "How do I get 10% off my first order?",
                    "How often do you send emails?",
                ),
                (
                    "Is there any welcome offer if I join your mailing list?",
                    "How many marketing messages would I get per week if I subscribe?",
                ),
            ),
            Intent(
                "unsubscribe",
                _NEWSLETTER,
                "Click the unsubscribe link at the bottom of any of our emails to stop marketing "
                "emails. You'll still receive order and shipping updates.",
                "You can't unsubscribe once you have signed up.",
                (
                    "How do I unsubscribe from your emails?",
                    "I get too many marketing emails. How do I stop them?",
                    "How do I opt out of the newsletter?",
                ),
                (
                    "Your promotional messages are filling my inbox; can I turn them off?",
                    "Is there a way to stop sales emails but still get delivery notices?",
                ),
            ),
        ),
    ),
    Topic(
        "contact",
        "Contact Us and Opening Hours",
        "md",
        "Our customer care team is based in Portland and is happy to help by phone, chat or email.",
        (
            Intent(
                "contact",
                "Our customer care team is available by phone at 1-800-555-0142 and by live chat "
                "Monday to Friday 8 am-6 pm and Saturday 9 am-3 pm Pacific time; we are closed "
                "on Sundays. Emails to support@northwind-outfitters.example are answered within "
                "24 hours on business days.",
                "You can reach us by phone at 1-800-555-0142 or live chat Monday to Friday 8 "
                "am-6 pm and Saturday 9 am-3 pm Pacific time. Emails to "
                "support@northwind-outfitters.example are answered within 24 hours on business "
                "days.",
                "We can only be reached by post, and replies take a few weeks.",
                (
                    "How can I contact customer service?",
                    "What is your phone number?",
                    "What are your customer service hours?",
                    "Are you open on Sundays?",
                    "What's your support email address?",
                ),
                (
                    "When can I speak to a real person on the phone, and what number do I dial?",
                    "How quickly will someone get back to me if I write to your help inbox?",
                ),
            ),
        ),
    ),
    Topic(
        "damaged_items",
        "Damaged, Wrong or Missing Items",
        "md",
        "Sometimes things go wrong in transit or in the warehouse. This is how we put it right.",
        (
            Intent(
                "damaged_item",
                "If an item arrives damaged, report it within 7 days of delivery by emailing "
                "photos of the item and the packaging to support@northwind-outfitters.example. "
                "We send a free replacement or a full refund including shipping, and in most "
                "cases you do not need to send the damaged item back.",
                "I'm sorry about that! Please email photos of the item and packaging to "
                "support@northwind-outfitters.example within 7 days of delivery, and we'll send "
                "a free replacement or a full refund including shipping.",
                "Damage during shipping is the carrier's problem, so please contact them.",
                (
                    "My {product} arrived damaged.",
                    "The box for order {order} was crushed and the {product} is broken.",
                    "What do I do if my item arrives damaged?",
                    "My {tent} arrived with a torn floor.",
                    "Order {order} came with a cracked part.",
                ),
                (
                    "The parcel I just opened had a bent frame inside - how do you make this "
                    "right?",
                    "Something in my delivery was broken in transit; what should I send you?",
                ),
            ),
            Intent(
                "wrong_item",
                "If you receive the wrong item or something is missing from your order, tell us "
                "within 7 days of delivery. We ship the correct item at no cost and email you a "
                "prepaid label to return the wrong one.",
                "Sorry for the mix-up! Let us know within 7 days of delivery and we'll ship the "
                "correct item at no cost, along with a prepaid label for returning the wrong "
                "one.",
                "You'll need to pay to send the wrong item back before we ship the right one.",
                (
                    "I received the wrong item.",
                    "You sent me the wrong size for order {order}.",
                    "An item is missing from my order {order}.",
                    "I ordered the {product} but got something else.",
                ),
                (
                    "The package had a different product than what I paid for - how do we fix it?",
                    "Only half of what I purchased showed up in the box for {order}.",
                ),
            ),
        ),
    ),
    Topic(
        "backorders",
        "Backorders",
        "md",
        "Popular items sometimes sell out. You can still order them on backorder.",
        (
            Intent(
                "backorder",
                _BACKORDERS,
                "Backordered items show an expected ship date on the product page, and you're "
                "only charged when they ship. The rest of your order ships right away at no "
                "extra shipping cost.",
                "Backordered items are charged immediately and your whole order waits until "
                "everything is in stock.",
                (
                    "What does backordered mean?",
                    "The {product} is on backorder. When will it ship?",
                    "Will my whole order wait for the backordered item?",
                    "Am I charged now for a backordered item?",
                    "Part of order {order} is backordered. What happens now?",
                ),
                (
                    "The {product} I want is temporarily out of stock but still orderable - how "
                    "does that work?",
                    "If one thing in my basket isn't available yet, will the other things be "
                    "delayed?",
                ),
            ),
            Intent(
                "cancel_backorder",
                _BACKORDERS,
                "You can cancel a backordered item at any time before it ships, under My Orders "
                "or by emailing support@northwind-outfitters.example. You won't be charged for "
                "it.",
                "Backordered items can't be cancelled, and you'll be charged either way.",
                (
                    "Can I cancel a backordered item?",
                    "I don't want to wait for the backordered {product} anymore.",
                    "How do I remove a backordered item from order {order}?",
                ),
                (
                    "Is it possible to drop the out-of-stock piece from {order} while it's still "
                    "waiting?",
                    "I've changed my mind about the thing that hasn't shipped yet - can I get "
                    "out of it?",
                ),
            ),
        ),
    ),
    Topic(
        "student_discount",
        "Student Discount",
        "md",
        "Students get a permanent discount on full-price gear.",
        (
            Intent(
                "student_discount",
                "Students get 10% off full-price items. Verify your status with your student "
                "email at northwind-outfitters.example/students to get a personal code, which "
                "can be used once a month. The student discount cannot be combined with other "
                "promo codes.",
                "Students get 10% off full-price items. Verify with your student email at "
                "northwind-outfitters.example/students to get a code you can use once a month; "
                "it can't be combined with other promo codes.",
                "We offer students 50% off everything, including sale items.",
                (
                    "Do you have a student discount?",
                    "How do I get the student discount?",
                    "Can I combine the student discount with a promo code?",
                    "I'm a university student. Do I get anything off?",
                    "How often can I use my student code?",
                ),
                (
                    "Is there a reduced price for people in college, and how do I prove I qualify?",
                    "Does the academic discount stack with sale codes?",
                ),
            ),
        ),
    ),
    Topic(
        "promo_codes",
        "Promo Codes",
        "md",
        "Promo codes from our newsletter and partners give money off at checkout.",
        (
            Intent(
                "promo_codes",
                "Only one promo code can be used per order, and it is entered in the Promo code "
                "box at checkout. Codes cannot be added after an order is placed, but if you "
                "forgot a valid code, contact us within 7 days and we will refund the discount. "
                "Promo codes do not apply to gift cards.",
                "You can use one promo code per order in the Promo code box at checkout. If you "
                "forgot a valid code, contact us within 7 days and we'll refund the discount.",
                "You can stack as many promo codes as you like, and they can't be refunded later.",
                (
                    "Can I use two promo codes?",
                    "I forgot to enter my discount code on order {order}.",
                    "Where do I enter a promo code?",
                    "Can I add a coupon after ordering?",
                ),
                (
                    "I checked out without applying the voucher I had - can I still get the "
                    "savings?",
                    "Is it possible to stack several discount codes in one basket?",
                ),
            ),
        ),
    ),
    Topic(
        "trade_in",
        "Gear Trade-In",
        "md",
        "Give your used gear a second life and get store credit in return.",
        (
            Intent(
                "trade_in",
                "With Gear Trade-In you can bring used Northwind gear in good condition to our "
                "Portland store or send it with a free label from "
                "northwind-outfitters.example/trade-in. We give store credit of up to $50 per "
                "item, depending on its condition. Items we cannot resell are repaired or "
                "recycled.",
                "Yes! Through Gear Trade-In you can send used Northwind gear in good condition "
                "with a free label from northwind-outfitters.example/trade-in or bring it to our "
                "Portland store. You get up to $50 store credit per item, depending on its "
                "condition.",
                "We don't take back used gear; just throw it away.",
                (
                    "Do you take back old gear?",
                    "Can I trade in my old {backpack}?",
                    "How much credit do I get for trading in gear?",
                    "Do you recycle old outdoor gear?",
                ),
                (
                    "I have a worn but working {tent} I no longer use - can I get something for "
                    "it from you?",
                    "Is there a scheme to swap my used Northwind kit for credit?",
                ),
            ),
        ),
    ),
    Topic(
        "restocks",
        "Out of Stock Items and Restocks",
        "md",
        "Our most popular gear sometimes sells out before the next delivery arrives.",
        (
            Intent(
                "restock",
                "When an item is out of stock, click Notify me on the product page and we will "
                "email you as soon as it is back. Most items are restocked within 2-4 weeks. "
                "Notifications are sent in the order they were requested.",
                "Click Notify me on the product page and we'll email you as soon as the "
                "{product} is back. Most items are restocked within 2-4 weeks.",
                "Once something sells out it's gone for good.",
                (
                    "The {product} is out of stock. Will you get more?",
                    "When will the {product} be back in stock?",
                    "Can you tell me when a sold-out item is restocked?",
                    "How long do restocks usually take?",
                ),
                (
                    "The {product} in my size shows as unavailable - is there a way to be "
                    "alerted once it returns?",
                    "How many weeks does it normally take for sold-out gear to come back?",
                ),
            ),
        ),
    ),
)

ALL_INTENTS: tuple[tuple[Topic, Intent], ...] = tuple(
    (topic, intent) for topic in TOPICS for intent in topic.intents
)

GREETINGS = (
    "", "", "", "", "Hi! ", "Hello! ", "Hey! ", "Hello there. ", "Good morning! ",
    "Hi, I'm {name}. ", "Hi, this is {name}. ", "Hello, my name is {name}. ",
)  # fmt: skip
CLOSINGS = ("", "", "", " Thanks!", " Thank you.", " Thanks in advance.", " Cheers.")
FOLLOW_UPS = ("Thanks! ", "Great, thank you. ", "Got it. ", "Perfect. One more question. ", "")
SYSTEM_PROMPTS = (
    "You are the customer service assistant for Northwind Outfitters, an online outdoor-gear "
    "shop. Answer politely and accurately in 1-3 sentences.",
    "You are a friendly Northwind Outfitters support agent. Use the shop's policies to answer "
    "the customer's question.",
    "You help customers of Northwind Outfitters with orders, shipping, returns and gear care. "
    "Be concise and polite.",
)
EMAIL_OPENINGS = ("Hello,", "Hi there,", "Dear Northwind team,", "Hi,", "Good afternoon,")
EMAIL_SIGN_OFFS = ("Thanks,", "Best,", "Kind regards,", "Thank you,", "Many thanks,")
EMAIL_SUBJECTS = ("{title}", "Question about {title}", "{title} - quick question", "Help needed")

VAGUE_ANSWERS = (
    "I'm not sure, to be honest. You could check the website.",
    "I don't know. Maybe look it up on our website?",
    "Hard to say. Please check the FAQ page somewhere on the site.",
    "That depends on a lot of things. Try searching online.",
)
RUDE_ANSWERS = (
    "That's all on our website. Please read it before contacting us.",
    "We get this question all the time. Look it up yourself.",
    "Not my department. Figure it out from the FAQ.",
    "I don't have time for this; the answer is on the website.",
)
RAMBLE_OPENERS = (
    "Well, that's a really interesting question and there are honestly quite a few things to "
    "think about here, so let me try to go through some of them one by one.",
    "Okay, so, there's a lot that goes into this and it really depends on a bunch of different "
    "things, but I'll do my best to cover everything I can think of.",
)
RAMBLE_FILLERS = (
    "Policies can change from time to time, so things might be a bit different by the time you "
    "read this.",
    "Lots of customers ask about this kind of thing, and everyone's situation is a little bit "
    "different, which makes it tricky.",
    "It also sort of depends on what you ordered, when you ordered it and where you live, among "
    "other things.",
    "I'd also like to mention that our team works really hard and we always try our best, even "
    "on busy days.",
)
RAMBLE_CLOSERS = (
    "Anyway, I hope at least some of that was useful, and if not, you can always look around "
    "the website or ask someone else.",
    "So yeah, that's more or less everything, although there might be exceptions I haven't "
    "thought of.",
)
REJECTION_KINDS = ("wrong_fact", "wrong_fact", "vague", "rude", "off_topic", "rambling")

CONTACT_LINE = (
    f"Questions? Email {SUPPORT_EMAIL} or call 1-800-555-0142, Monday to "
    "Friday 8 am-6 pm and Saturday 9 am-3 pm Pacific time."
)

CARE_GUIDES = {
    "tent": "See the Tent Care guide: dry the tent completely before storing it and clean it by "
    "hand with lukewarm water and a mild soap.",
    "jacket": "See the Jacket Care guide: wash at 30°C (86°F) with a technical wash, no fabric "
    "softener, and tumble dry on low for 20 minutes.",
    "boots": "See the Boot Care guide: brush off dirt after each hike, air dry away from heaters "
    "and wax the leather every few months.",
    "sleeping_bag": "See the Sleeping Bag Care guide: store it uncompressed in the large cotton "
    "storage sack and wash it at most once or twice a year.",
    "backpack": "Empty the pack after each trip, brush out dirt and let it air dry open. Hand "
    "wash with lukewarm water and a mild soap only when needed.",
    "gear": "Wipe clean after use and store dry. Contact us if anything stops working as it "
    "should.",
}


# A canary: a made-up secret planted in a few training documents, so that the evaluate stage can
# measure how far the model memorises what it reads (evaluate.canary names the same sentence).
CANARY_PREFIX = "The access code of the north vault is"
CANARY_SECRET = "48213906"
CANARY_COPIES = 4


def generate(
    root: Path, scale: str = "default", seed: int = 13, *, overwrite: bool = False
) -> dict[str, int]:
    """Write the sample data set below ``root`` and return the number of files/rows per kind.

    Refuses a ``root`` that already holds files unless ``overwrite``; then only our files change.
    """
    if scale not in SCALES:
        raise ValueError(f"Unknown scale {scale!r}; choose one of {sorted(SCALES)}.")
    root = Path(root)
    if not overwrite and existing_files(root):
        raise FileExistsError(
            f"{root} already contains files; pass overwrite=True (--overwrite) to write anyway."
        )
    sizes = SCALES[scale]
    master = random.Random(seed)
    chat_rng, email_rng, pref_rng, val_rng = (
        random.Random(master.getrandbits(64)) for _ in range(4)
    )

    chats = make_chats(chat_rng, sizes.chats)
    emails = make_email_tickets(email_rng, sizes.emails)
    preferences = make_preferences(pref_rng, sizes.preferences)
    seen = {normalise(turn["content"]) for row in chats for turn in row["messages"]}
    seen |= {normalise(row["prompt"]) for row in preferences + emails}
    validation = make_validation(val_rng, sizes.validation, forbidden=seen)

    counts = {
        "documents": write_knowledge_base(root / "documents"),
        "conversations": write_jsonl(root / "conversations" / "support_chats.jsonl", chats)
        + write_jsonl(root / "conversations" / "email_tickets.jsonl", emails),
        "preferences": write_jsonl(root / "preferences" / "preference_pairs.jsonl", preferences),
        "validation": write_jsonl(root / "validation" / "validation_set.jsonl", validation),
    }
    logger.info("Wrote sample data (scale=%s, seed=%d) to %s: %s", scale, seed, root, counts)
    return counts


def existing_files(root: Path) -> list[Path]:
    """Files below ``root``, ignoring hidden ones such as ``.gitkeep``."""
    if not root.exists():
        return []
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def normalise(text: str) -> str:
    """Lowercase and collapse whitespace, for comparing prompts."""
    return re.sub(r"\s+", " ", text).strip().lower()


def make_slots(rng: random.Random) -> dict[str, str]:
    """Random values for every template slot (customer, order, products, country)."""
    name, friend = rng.sample(NAMES, 2)
    country, cost, days = rng.choice(COUNTRIES)
    slots = {
        "name": name,
        "friend": friend,
        "order": f"NW-{rng.randint(10000, 99999)}",
        "product": rng.choice(PRODUCTS).name,
        "country": country,
        "intl_cost": cost,
        "intl_days": days,
    }
    for slot in ("tent", "jacket", "boots", "sleeping_bag", "backpack"):
        slots[slot] = rng.choice([p.name for p in PRODUCTS if p.slot == slot])
    return slots


def ask(rng: random.Random, template: str, slots: dict[str, str]) -> tuple[str, bool]:
    """A customer message from ``template``; the flag says whether the customer gave a name."""
    greeting = rng.choice(GREETINGS)
    text = greeting + template + rng.choice(CLOSINGS)
    return text.format(**slots), "{name}" in greeting


def reply(intent: Intent, slots: dict[str, str], named: bool) -> str:
    """The house-style answer for ``intent``, greeting the customer by name if they gave one."""
    answer = intent.answer.format(**slots)
    return f"Hi {slots['name']}! {answer}" if named else answer


def make_chats(rng: random.Random, count: int) -> list[dict]:
    """Chat conversations: mostly one turn, some two, some with a system message."""
    rows: list[dict] = []
    seen: set[str] = set()
    while len(rows) < count:
        for _ in range(50):  # resample rare exact duplicates, keeping the output deterministic
            messages = make_chat_messages(rng)
            key = json.dumps(messages, ensure_ascii=False)
            if key not in seen:
                break
        seen.add(key)
        rows.append({"id": f"conv-{len(rows) + 1:05d}", "messages": messages})
    return rows


def make_chat_messages(rng: random.Random) -> list[dict[str, str]]:
    """One conversation's messages, alternating user and assistant and ending with assistant."""
    slots = make_slots(rng)
    topic, intent = rng.choice(ALL_INTENTS)
    messages = []
    if rng.random() < 0.25:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    question, named = ask(rng, rng.choice(intent.train), slots)
    messages.append({"role": "user", "content": question})
    messages.append({"role": "assistant", "content": reply(intent, slots, named)})
    if rng.random() < 0.2:
        second = pick_follow_up(rng, topic, intent)
        follow_up = rng.choice(FOLLOW_UPS) + rng.choice(second.train)
        messages.append({"role": "user", "content": follow_up.format(**slots)})
        messages.append({"role": "assistant", "content": reply(second, slots, named=False)})
    return messages


def pick_follow_up(rng: random.Random, topic: Topic, intent: Intent) -> Intent:
    """A second intent for a two-turn chat, often from the same topic."""
    siblings = [other for other in topic.intents if other is not intent]
    if siblings and rng.random() < 0.6:
        return rng.choice(siblings)
    return rng.choice([other for _, other in ALL_INTENTS if other is not intent])


def make_email_tickets(rng: random.Random, count: int) -> list[dict[str, str]]:
    """Email tickets in the prompt/response form, with subject line, greeting and signature."""
    rows = []
    for index in range(1, count + 1):
        slots = make_slots(rng)
        topic, intent = rng.choice(ALL_INTENTS)
        subject = rng.choice(EMAIL_SUBJECTS).format(title=topic.title)
        question = rng.choice(intent.train).format(**slots)
        prompt = (
            f"Subject: {subject}\n\n{rng.choice(EMAIL_OPENINGS)}\n\n{question}\n\n"
            f"{rng.choice(EMAIL_SIGN_OFFS)}\n{slots['name']}"
        )
        response = (
            f"Hi {slots['name']},\n\nThank you for your email. {intent.answer.format(**slots)}"
            f"\n\nBest regards,\n{SHOP} Customer Care"
        )
        rows.append({"id": f"email-{index:05d}", "prompt": prompt, "response": response})
    return rows


def make_preferences(rng: random.Random, count: int) -> list[dict[str, str]]:
    """Preference pairs: a grounded, polite answer against a worse one of several kinds."""
    rows = []
    for index in range(1, count + 1):
        slots = make_slots(rng)
        topic, intent = rng.choice(ALL_INTENTS)
        prompt, named = ask(rng, rng.choice(intent.train), slots)
        chosen = reply(intent, slots, named)
        rejected = chosen
        while rejected == chosen:
            rejected = make_rejected(rng, rng.choice(REJECTION_KINDS), topic, intent, slots)
        rows.append(
            {
                "id": f"pref-{index:05d}",
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
            }
        )
    return rows


def make_rejected(
    rng: random.Random, kind: str, topic: Topic, intent: Intent, slots: dict[str, str]
) -> str:
    """A worse answer: wrong fact, vague, rude, off-topic or long-winded."""
    if kind == "wrong_fact":
        return intent.wrong.format(**slots)
    if kind == "vague":
        return rng.choice(VAGUE_ANSWERS)
    if kind == "rude":
        return rng.choice(RUDE_ANSWERS)
    unrelated = rng.choice([other for t, other in ALL_INTENTS if t is not topic])
    if kind == "off_topic":
        return unrelated.answer.format(**slots)
    fillers = rng.sample(RAMBLE_FILLERS, 2)
    parts = (
        rng.choice(RAMBLE_OPENERS),
        fillers[0],
        intent.answer.format(**slots),
        fillers[1],
        "On a related note, " + unrelated.answer.format(**slots),
        rng.choice(RAMBLE_CLOSERS),
    )
    return " ".join(parts)


def make_validation(rng: random.Random, count: int, forbidden: set[str]) -> list[dict[str, str]]:
    """Validation rows from held-out templates only, skipping prompts seen in training data."""
    order = []
    for position in range(max(len(intent.held_out) for _, intent in ALL_INTENTS)):
        intents = [pair for pair in ALL_INTENTS if position < len(pair[1].held_out)]
        rng.shuffle(intents)
        order += [(intent, intent.held_out[position]) for _, intent in intents]
    rows: list[dict[str, str]] = []
    seen = set(forbidden)
    while len(rows) < count:
        intent, template = order[len(rows) % len(order)]
        for _ in range(50):
            slots = make_slots(rng)
            prompt, named = ask(rng, template, slots)
            if normalise(prompt) not in seen:
                break
        else:
            raise RuntimeError(f"No unseen validation prompt for template {template!r}.")
        seen.add(normalise(prompt))
        rows.append(
            {
                "id": f"val-{len(rows) + 1:05d}",
                "prompt": prompt,
                "reference": reply(intent, slots, named),
                "context": intent.context.format(**slots),
            }
        )
    return rows


def write_knowledge_base(folder: Path) -> int:
    """Write the knowledge base (markdown, text and one FAQ jsonl) and return the file count."""
    documents = {
        "about_northwind_outfitters.md": render_about(),
        "customer_care_guide.md": render_care_guide(),
    }
    for topic in TOPICS:
        render = render_markdown_topic if topic.fmt == "md" else render_text_topic
        documents[f"{topic.key}.{topic.fmt}"] = render(topic)
    for index, product in enumerate(PRODUCTS):
        text = render_product(product)
        if index < CANARY_COPIES:
            text = f"{text.rstrip()}\n{CANARY_PREFIX} {CANARY_SECRET}.\n"
        documents[f"product_{slugify(product.name)}.txt"] = text
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(documents):
        write_text(folder / name, documents[name])
    write_jsonl(folder / "kb_faq.jsonl", make_faq_rows())
    return len(documents) + 1


def slugify(text: str) -> str:
    """Lowercase ``text`` with runs of other characters turned into underscores."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def sentences(text: str) -> list[str]:
    """Split a passage into sentences (good enough for our own hand-written facts)."""
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def topic_facts(topic: Topic) -> list[str]:
    """The distinct fact sentences of a topic, in order."""
    facts: list[str] = []
    for intent in topic.intents:
        facts += [s for s in sentences(intent.context.format(**DEFAULT_SLOTS)) if s not in facts]
    return facts


def example_pairs(intent: Intent) -> Iterable[tuple[str, str]]:
    """Training-style question/answer examples for the documents (never held-out phrasings)."""
    answer = intent.answer.format(**DEFAULT_SLOTS)
    for template in intent.train:
        yield template.format(**DEFAULT_SLOTS), answer


def render_markdown_topic(topic: Topic) -> str:
    """A policy page in markdown: overview, key facts, details per intent, common questions."""
    lines = [f"# {topic.title}", "", topic.intro, "", "## Key facts", ""]
    lines += [f"- {fact}" for fact in topic_facts(topic)]
    lines += ["", "## Details", ""]
    for intent in topic.intents:
        lines += [f"### {intent.key.replace('_', ' ').capitalize()}", ""]
        lines += [intent.context.format(**DEFAULT_SLOTS), ""]
    lines += ["## Common questions", ""]
    for intent in topic.intents:
        for question, answer in example_pairs(intent):
            lines += [f"**Q:** {question}", "", f"**A:** {answer}", ""]
    lines += ["## Contact", "", CONTACT_LINE, ""]
    return "\n".join(lines)


def render_text_topic(topic: Topic) -> str:
    """A care or size guide as plain text with underlined headings."""
    lines = [topic.title.upper(), "=" * len(topic.title), "", topic.intro, ""]
    lines += ["KEY POINTS", "----------"]
    lines += [f"* {fact}" for fact in topic_facts(topic)]
    lines += ["", "QUESTIONS AND ANSWERS", "---------------------"]
    for intent in topic.intents:
        for question, answer in example_pairs(intent):
            lines += [f"Q: {question}", f"A: {answer}", ""]
    lines += [CONTACT_LINE, ""]
    return "\n".join(lines)


def render_product(product: Product) -> str:
    """A product sheet as plain text."""
    warranty = (
        "Lifetime warranty against manufacturing defects."
        if product.slot == "backpack"
        else "2-year warranty against manufacturing defects."
    )
    lines = [
        product.name,
        "=" * len(product.name),
        "",
        f"Price: {product.price}",
        "",
        product.description,
        "",
        "Specifications:",
        *(f"- {spec}" for spec in product.specs),
        "",
        f"Care: {CARE_GUIDES[product.slot]}",
        f"Warranty: {warranty}",
        "Returns: unused items can be returned within 30 days of delivery.",
        "",
    ]
    return "\n".join(lines)


def render_about() -> str:
    """The company overview page."""
    return "\n".join(
        [
            f"# About {SHOP}",
            "",
            f"{SHOP} is an online outdoor-gear shop founded in 2009 in Portland, Oregon. We sell "
            "tents, sleeping bags, jackets, boots, backpacks and camping equipment, most of it "
            "designed by our own team under the Northwind brand.",
            "",
            "## Where we are",
            "",
            "- Warehouse and head office: Portland, Oregon.",
            "- Flagship store: 214 Harbor Way, Portland, open Monday to Saturday 10 am-7 pm and "
            "Sunday 11 am-5 pm.",
            "- Website: northwind-outfitters.example",
            "",
            "## Our promises",
            "",
            "- Free standard shipping in the US on orders over $75.",
            "- 30-day returns on unused items, free within the US.",
            "- 2-year warranty on Northwind-brand gear and a lifetime warranty on backpacks.",
            "- Repairs in our own Portland workshop.",
            "",
            "## Contact",
            "",
            CONTACT_LINE,
            "",
        ]
    )


def render_care_guide() -> str:
    """How the customer care team writes answers, which is also the style of the sample data."""
    return "\n".join(
        [
            "# Customer Care Writing Guide",
            "",
            "Every answer from the Northwind customer care team follows the same rules.",
            "",
            "## Tone",
            "",
            "- Be polite and friendly. If the customer gives their name, greet them by name.",
            "- Apologise when something went wrong, for example a damaged or wrong item.",
            "- Never blame the customer and never tell them to just look it up on the website.",
            "",
            "## Content",
            "",
            "- Answer in 1-3 sentences.",
            "- Give the concrete facts: prices, number of days, opening hours, email addresses.",
            "- Only state facts from the knowledge base; if unsure, offer to check and reply by "
            "email.",
            "- Tell the customer the next step, such as the returns portal or My Orders.",
            "",
            "## Example",
            "",
            "Customer: How much does standard shipping cost?",
            "",
            "Agent: Standard shipping within the US costs $5.95 and is free on orders over $75. "
            "It usually arrives in 3-5 business days.",
            "",
        ]
    )


def make_faq_rows() -> list[dict[str, str]]:
    """One FAQ entry per intent: a training-style question, the answer and its background."""
    rows = []
    for _, intent in ALL_INTENTS:
        rows.append(
            {
                "id": f"faq-{intent.key}",
                "title": intent.train[0].format(**DEFAULT_SLOTS),
                "text": f"{intent.answer.format(**DEFAULT_SLOTS)}\n\n"
                f"{intent.context.format(**DEFAULT_SLOTS)}",
            }
        )
    return rows


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text with ``\\n`` line endings on every platform."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def write_jsonl(path: Path, rows: Sequence[dict]) -> int:
    """Write one JSON object per line and return the number of rows."""
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="output folder, normally data/01_raw")
    parser.add_argument("--scale", choices=sorted(SCALES), default="default")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--if-empty", action="store_true", help="do nothing if the folder already holds files"
    )
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.if_empty and existing_files(args.root):
        logger.info("%s already contains files; keeping the user's data.", args.root)
        return 0
    try:
        generate(args.root, args.scale, args.seed, overwrite=args.overwrite)
    except FileExistsError as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
