package templates

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/job"
)

// SampleDefinitions returns three APPROVED utility templates in Russian with NAMED
// parameters, of the kind Herald is built for, for `herald dev`, demos and tests:
// order_ready (an order waiting at a pickup point, with a "Мой заказ" URL button),
// booking_reminder and bonus_expiring. Each call returns fresh, validated copies.
func SampleDefinitions() []*Definition {
	defs := []*Definition{
		{
			Name: "order_ready", Language: "ru", Status: StatusApproved, Category: CategoryUtility,
			ParameterFormat: FormatNamed,
			Components: []Component{
				{
					Type: ComponentBody,
					Text: "Ваш заказ {{order}} ждёт вас в пункте выдачи по адресу {{address}}. Срок хранения до {{until}} включительно.",
					Example: &Example{BodyTextNamedParams: []NamedExample{
						{ParamName: "order", Example: "123456"},
						{ParamName: "address", Example: "ул. Текстильщиков, д. 20"},
						{ParamName: "until", Example: "21.02.2021"},
					}},
				},
				{Type: ComponentFooter, Text: "Это автоматическое уведомление"},
				{Type: ComponentButtons, Buttons: []Button{{
					Type: ButtonURL, Text: "Мой заказ", URL: "https://shop.example/orders/{{1}}",
					Example: []string{"https://shop.example/orders/123456"},
				}}},
			},
		},
		{
			Name: "booking_reminder", Language: "ru", Status: StatusApproved, Category: CategoryUtility,
			ParameterFormat: FormatNamed,
			Components: []Component{
				{
					Type: ComponentBody,
					Text: "Здравствуйте, {{name}}! Напоминаем о брони в отеле «{{hotel}}» с {{from}} по {{to}}. Ждём вас.",
					Example: &Example{BodyTextNamedParams: []NamedExample{
						{ParamName: "name", Example: "Анна"},
						{ParamName: "hotel", Example: "Волга"},
						{ParamName: "from", Example: "12.07.2026"},
						{ParamName: "to", Example: "15.07.2026"},
					}},
				},
				{Type: ComponentFooter, Text: "Изменить бронь можно в личном кабинете"},
			},
		},
		{
			Name: "bonus_expiring", Language: "ru", Status: StatusApproved, Category: CategoryUtility,
			ParameterFormat: FormatNamed,
			Components: []Component{
				{
					Type: ComponentBody,
					Text: "Здравствуйте, {{name}}! На вашем счёте {{amount}} бонусов, они сгорят {{date}}. Успейте потратить их при следующей покупке.",
					Example: &Example{BodyTextNamedParams: []NamedExample{
						{ParamName: "name", Example: "Иван"},
						{ParamName: "amount", Example: "350"},
						{ParamName: "date", Example: "30.11.2026"},
					}},
				},
				{Type: ComponentFooter, Text: "Бонусная программа магазина"},
			},
		},
	}
	for _, d := range defs {
		if err := d.Validate(); err != nil {
			panic(fmt.Sprintf("templates: sample %s: %v", d.Name, err)) // a bug in this file
		}
	}
	return defs
}

// PutSamples stores every sample definition, as approved, in the catalogue of each of
// tenants (the default tenant when none is given), overwriting one of the same name and
// language: the set-up of `herald dev`, the benchmarks, the chaos test and the tests.
func PutSamples(ctx context.Context, kv jetstream.KeyValue, tenants ...string) error {
	if len(tenants) == 0 {
		tenants = []string{job.DefaultTenant}
	}
	for _, t := range tenants {
		for _, d := range SampleDefinitions() {
			if _, err := Put(ctx, kv, t, d); err != nil {
				return fmt.Errorf("sample template %s of tenant %s: %w", d.Name, job.TenantOr(t), err)
			}
		}
	}
	return nil
}
